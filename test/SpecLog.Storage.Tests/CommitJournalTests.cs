namespace SpecLog.Storage.Tests;

/// <summary>
/// The shared group commit: logs made durable through one journal, the journal replayed into logs whose own files lost
/// their unsynced tail in a crash, checkpoints when a journal segment rolls, and live journals left alone.
/// </summary>
public sealed class CommitJournalTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static int Size(long i) => 20 + (int)(i * 13 % 180);

    private static DurableLogOptions LogOptions(TempDirectory dir, string name, CommitJournal? journal) => new()
    {
        Directory = Path.Combine(dir.Path, name),
        Fsync = true,
        SegmentSize = 1 << 20,
        Journal = journal,
    };

    private static async Task AppendAsync(DurableLog log, long from, long to, int flushEvery)
    {
        for (long i = from; i < to; i++)
        {
            Assert.Equal(i, log.Append((byte)i, Data.Payload(i, Size(i))));
            if ((i + 1) % flushEvery == 0)
            {
                await log.FlushAsync(Ct);
            }
        }

        await log.FlushAsync(Ct);
    }

    /// <summary>Zeroes a log's single segment from entry <paramref name="from"/> on: its unsynced tail, lost with the page cache.</summary>
    private static void LoseTail(TempDirectory dir, string name, int from, int count)
    {
        long[] offsets = Data.FrameOffsets(Enumerable.Range(0, count).Select(i => Size(i)).ToArray());
        string segment = Path.Combine(dir.Path, name, 0L.ToString("D20") + ".seg");
        Data.Patch(segment, offsets[from], new byte[offsets[count] - offsets[from]]);
    }

    [Fact]
    public async Task Logs_sharing_a_journal_are_durable_and_readable_with_at_most_one_journal_sync_per_flush()
    {
        using var dir = new TempDirectory();
        using var journal = CommitJournal.Open(Path.Combine(dir.Path, "journal"));
        var logs = Enumerable.Range(0, 4).Select(i => DurableLog.Open(LogOptions(dir, $"log-{i}", journal))).ToArray();
        try
        {
            await Task.WhenAll(logs.Select(log => Task.Run(() => AppendAsync(log, 0, 200, 1), Ct)));
            foreach (DurableLog log in logs)
            {
                Assert.Equal(200, log.NextIndex);
                Assert.Equal(200, log.DurableIndex);
                DurableLogTests.AssertEntries(log, 0, 200, Size, i => (byte)i);
            }

            // 4 × 200 flushes; a journal sync covers every flush that queued while the previous one was in flight.
            Assert.InRange(journal.SyncCount, 1, 4 * 201);
            Assert.Single(Directory.GetDirectories(Path.Combine(dir.Path, "journal")));
        }
        finally
        {
            foreach (DurableLog log in logs)
            {
                await log.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_crashed_journal_gives_back_the_durable_entries_a_log_lost_from_its_own_files()
    {
        using var dir = new TempDirectory();
        string root = Path.Combine(dir.Path, "journal");
        var journal = CommitJournal.Open(root);
        var log = DurableLog.Open(LogOptions(dir, "shard-0", journal));
        await AppendAsync(log, 0, 50, 5);
        Assert.Equal(50, log.DurableIndex);
        log.SimulateCrash();
        journal.SimulateCrash();

        // The log fdatasynced its own file only when it opened: after a machine crash entries 10 and up may be gone.
        LoseTail(dir, "shard-0", 10, 50);
        await using (var alone = DurableLog.Open(LogOptions(dir, "shard-0", null)))
        {
            Assert.Equal(10, alone.NextIndex); // what the own files hold without the journal
        }

        // Opening a journal replays the orphan into the log and removes it.
        using (var next = CommitJournal.Open(root))
        {
            Assert.Single(Directory.GetDirectories(root)); // only the new one
            await using var reopened = DurableLog.Open(LogOptions(dir, "shard-0", next));
            Assert.Equal(50, reopened.NextIndex);
            Assert.Equal(50, reopened.DurableIndex);
            DurableLogTests.AssertEntries(reopened, 0, 50, Size, i => (byte)i);
            await AppendAsync(reopened, 50, 60, 3);
        }

        await using var final = DurableLog.Open(LogOptions(dir, "shard-0", null));
        Assert.Equal(60, final.NextIndex);
        DurableLogTests.AssertEntries(final, 0, 60, Size, i => (byte)i);
    }

    [Fact]
    public async Task A_journal_segment_roll_checkpoints_every_member_log_and_deletes_the_old_segment()
    {
        using var dir = new TempDirectory();
        string root = Path.Combine(dir.Path, "journal");
        var journal = CommitJournal.Open(root, segmentSize: 64 << 10);
        var a = DurableLog.Open(LogOptions(dir, "a", journal));
        var b = DurableLog.Open(LogOptions(dir, "b", journal));
        await AppendAsync(a, 0, 400, 4); // ~55 KiB of frames plus record headers: the journal rolls at least once
        await AppendAsync(b, 0, 400, 4);
        string own = Directory.GetDirectories(root).Single();
        Assert.InRange(Directory.GetFiles(own, "*.jnl").Length, 1, 2);
        Assert.DoesNotContain(Path.Combine(own, 1L.ToString("D20") + ".jnl"), Directory.GetFiles(own, "*.jnl"));

        a.SimulateCrash();
        b.SimulateCrash();
        journal.SimulateCrash();
        using (CommitJournal.Open(root))
        {
        }

        foreach (string name in new[] { "a", "b" })
        {
            await using var log = DurableLog.Open(LogOptions(dir, name, null));
            Assert.Equal(400, log.NextIndex);
            DurableLogTests.AssertEntries(log, 0, 400, Size, i => (byte)i);
        }

        Assert.Empty(Directory.GetDirectories(root)); // the journal opened above was unused and removed itself
    }

    [Fact]
    public async Task A_live_journal_is_never_replayed_and_a_closed_one_leaves_nothing_behind()
    {
        using var dir = new TempDirectory();
        string root = Path.Combine(dir.Path, "journal");
        var journal = CommitJournal.Open(root);
        await using (var log = DurableLog.Open(LogOptions(dir, "log", journal)))
        {
            await AppendAsync(log, 0, 20, 2);
            Assert.Equal(0, CommitJournal.ReplayOrphans(root));
            Assert.Single(Directory.GetDirectories(root));
        }

        journal.Dispose();
        Assert.Empty(Directory.GetDirectories(root));
        await using var reopened = DurableLog.Open(LogOptions(dir, "log", null));
        Assert.Equal(20, reopened.NextIndex);
        DurableLogTests.AssertEntries(reopened, 0, 20, Size, i => (byte)i);
    }
}
