namespace SpecLog.Storage.Tests;

public sealed class DurableLogTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly int[] s_sizes = [0, 1, 7, 8, 9, 23, 24, 25, 100, 1000, 4095, 4096, 4097, 65536, 300_000];

    [Fact]
    public async Task AppendFlushRead_RoundTripsVariedSizesAndKinds()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir, fsync: true));
        Assert.Equal(0, log.NextIndex);
        Assert.Equal(0, log.DurableIndex);

        for (int i = 0; i < s_sizes.Length; i++)
        {
            Assert.Equal(i, log.Append((byte)(i * 17), Data.Payload(i, s_sizes[i])));
        }

        // From the unflushed buffer.
        AssertEntries(log, 0, s_sizes.Length);

        long durable = await log.FlushAsync(Ct);
        Assert.Equal(s_sizes.Length, durable);
        Assert.Equal(s_sizes.Length, log.DurableIndex);

        // From disk.
        AssertEntries(log, 0, s_sizes.Length);
        IReadOnlyList<StoredEntry> range = log.ReadRange(0, 1000, int.MaxValue);
        Assert.Equal(s_sizes.Length, range.Count);
        for (int i = 0; i < range.Count; i++)
        {
            Assert.Equal(i, range[i].Index);
            Assert.Equal((byte)(i * 17), range[i].Kind);
            Assert.Equal(Data.Payload(i, s_sizes[i]), range[i].Payload.ToArray());
        }
    }

    [Fact]
    public async Task MaxEntrySizePayload_IsAcceptedAndOneByteMoreIsRejectedWithoutLosingAnything()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir, segmentSize: 4 << 20));
        byte[] max = Data.Payload(1, DurableLogOptions.DEFAULT_MAX_ENTRY_SIZE);
        Assert.Equal(0, log.Append(1, Data.Payload(0, 10)));
        Assert.Equal(1, log.Append(2, max));

        Assert.Throws<ArgumentException>(() => log.Append(3, new byte[DurableLogOptions.DEFAULT_MAX_ENTRY_SIZE + 1]));
        Assert.Equal(2, log.NextIndex);

        Assert.Equal(2, log.Append(4, Data.Payload(2, 5)));
        await log.FlushAsync(Ct);
        Assert.Equal(Data.Payload(0, 10), log.Read(0).Payload.ToArray());
        Assert.Equal(max, log.Read(1).Payload.ToArray());
        Assert.Equal(4, log.Read(2).Kind);
        Assert.Equal(3, log.NextIndex);
    }

    [Fact]
    public async Task ConcurrentAppenders_GetContiguousIndexesAndEveryEntryReadsBackIntact()
    {
        const int threads = 8;
        const int perThread = 5000;
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir, fsync: true, segmentSize: 256 << 10));
        var indexes = new long[threads][];
        using var start = new Barrier(threads);
        var tasks = new Task[threads];
        for (int t = 0; t < threads; t++)
        {
            int thread = t;
            tasks[t] = Task.Factory.StartNew(
                async () =>
                {
                    var mine = new long[perThread];
                    start.SignalAndWait(Ct);
                    for (int i = 0; i < perThread; i++)
                    {
                        long seed = (thread * 1_000_000L) + i;
                        mine[i] = log.Append((byte)thread, Data.Payload(seed, 8 + (i % 200)));
                        if (i % 100 == 99)
                        {
                            long durable = await log.FlushAsync(Ct);
                            Assert.True(durable > mine[i]);
                        }
                    }

                    indexes[thread] = mine;
                },
                Ct,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default).Unwrap();
        }

        await Task.WhenAll(tasks);
        await log.FlushAsync(Ct);

        Assert.Equal(threads * perThread, log.NextIndex);
        Assert.Equal(threads * perThread, log.DurableIndex);
        var owner = new (int Thread, int Seq)[threads * perThread];
        var seen = new bool[threads * perThread];
        for (int t = 0; t < threads; t++)
        {
            for (int i = 0; i < perThread; i++)
            {
                long index = indexes[t][i];
                Assert.False(seen[index], $"index {index} handed out twice");
                seen[index] = true;
                owner[index] = (t, i);
                if (i > 0)
                {
                    Assert.True(index > indexes[t][i - 1]);
                }
            }
        }

        Assert.All(seen, Assert.True);
        Assert.True(log.SegmentCount > 1);

        long next = 0;
        while (next < log.NextIndex)
        {
            IReadOnlyList<StoredEntry> batch = log.ReadRange(next, 1000);
            Assert.NotEmpty(batch);
            foreach (StoredEntry entry in batch)
            {
                Assert.Equal(next, entry.Index);
                (int thread, int seq) = owner[next];
                Assert.Equal((byte)thread, entry.Kind);
                Assert.Equal(Data.Payload((thread * 1_000_000L) + seq, 8 + (seq % 200)), entry.Payload.ToArray());
                next++;
            }
        }
    }

    [Fact]
    public async Task ConcurrentReadsDuringAppendsFlushesAndRolls_SeeIntactEntries()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, segmentSize: 16 << 10);
        options.WriteBehindThreshold = 8 << 10;
        options.SparseIndexCacheSegments = 2;
        await using var log = DurableLog.Open(options);
        const int writers = 4;
        const int perWriter = 3000;
        int done = 0;
        var tasks = new List<Task>();
        for (int w = 0; w < writers; w++)
        {
            int writer = w;
            tasks.Add(Task.Run(
                async () =>
                {
                    for (int i = 0; i < perWriter; i++)
                    {
                        long seed = (writer * 100_000L) + i;
                        log.Append((byte)writer, Data.Payload(seed, 8 + (int)(seed % 300)));
                        if (i % 50 == 0)
                        {
                            await log.FlushAsync(Ct);
                        }
                    }

                    Interlocked.Increment(ref done);
                },
                Ct));
        }

        int reads = 0;
        for (int r = 0; r < 2; r++)
        {
            int readerSeed = r;
            tasks.Add(Task.Run(
                () =>
                {
                    var random = new Random(readerSeed);
                    while (Volatile.Read(ref done) < writers || reads < 2000)
                    {
                        long next = log.NextIndex;
                        if (next == 0)
                        {
                            continue;
                        }

                        long from = random.NextInt64(next);
                        foreach (StoredEntry entry in log.ReadRange(from, 1 + random.Next(20)))
                        {
                            long seed = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(entry.Payload.Span);
                            Assert.Equal((byte)(seed / 100_000), entry.Kind);
                            Assert.Equal(Data.Payload(seed, 8 + (int)(seed % 300)), entry.Payload.ToArray());
                        }

                        Interlocked.Increment(ref reads);
                    }
                },
                Ct));
        }

        await Task.WhenAll(tasks);
        await log.FlushAsync(Ct);
        Assert.Equal(writers * perWriter, log.NextIndex);
        Assert.True(log.SegmentCount > 10);
    }

    [Fact]
    public async Task ConcurrentFlushes_AllCompleteWithTheirEntriesDurable()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir, fsync: true));
        var flushes = new List<(long Index, Task<long> Flush)>();
        for (int i = 0; i < 200; i++)
        {
            long index = log.Append(0, Data.Payload(i, 50));
            flushes.Add((index, log.FlushAsync(Ct).AsTask()));
        }

        foreach ((long index, Task<long> flush) in flushes)
        {
            Assert.True(await flush > index);
        }

        Assert.Equal(200, log.DurableIndex);
    }

    [Fact]
    public async Task DurableIndex_CoversOnlyFlushedEntries()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir, fsync: true));
        for (int i = 0; i < 10; i++)
        {
            log.Append(1, Data.Payload(i, 64));
        }

        Assert.Equal(0, log.DurableIndex);
        Assert.Equal(10, await log.FlushAsync(Ct));
        Assert.Equal(10, log.DurableIndex);

        for (int i = 10; i < 15; i++)
        {
            log.Append(1, Data.Payload(i, 64));
        }

        // Nobody asked for a flush and the buffer is far below the write-behind threshold: nothing is written.
        Assert.Equal(10, log.DurableIndex);
        Assert.Equal(15, log.NextIndex);
        Assert.Equal(Data.Payload(12, 64), log.Read(12).Payload.ToArray());

        Assert.Equal(15, await log.FlushAsync(Ct));
        Assert.Equal(15, log.DurableIndex);

        // A flush with nothing pending completes at once with the current durable index.
        ValueTask<long> idle = log.FlushAsync(Ct);
        Assert.True(idle.IsCompletedSuccessfully);
        Assert.Equal(15, await idle);
    }

    [Fact]
    public async Task WriteBehind_WritesWithoutFlushButDoesNotClaimDurability()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir);
        options.WriteBehindThreshold = 64 << 10;
        await using var log = DurableLog.Open(options);
        for (int i = 0; i < 2000; i++)
        {
            log.Append(3, Data.Payload(i, 200));
        }

        Assert.Equal(0, log.DurableIndex);
        for (int i = 0; i < 2000; i += 37)
        {
            Assert.Equal(Data.Payload(i, 200), log.Read(i).Payload.ToArray());
        }

        Assert.Equal(2000, await log.FlushAsync(Ct));
        AssertEntries(log, 0, 2000, _ => 200, _ => 3);
    }

    [Theory]
    [InlineData(SegmentPreallocation.ZeroFill)]
    [InlineData(SegmentPreallocation.Fallocate)]
    [InlineData(SegmentPreallocation.None)]
    public async Task Reopen_RecoversEveryEntryAndContinuesNumbering(SegmentPreallocation preallocation)
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        options.Preallocation = preallocation;
        await using (var log = DurableLog.Open(options))
        {
            for (int i = 0; i < 1000; i++)
            {
                log.Append((byte)i, Data.Payload(i, i % 300));
            }

            await log.FlushAsync(Ct);
        }

        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(1000, log.NextIndex);
            Assert.Equal(1000, log.DurableIndex);
            AssertEntries(log, 0, 1000, i => (int)(i % 300), i => (byte)i);
            Assert.Equal(1000, log.Append(7, Data.Payload(1000, 10)));

            // Disposed without an explicit flush: dispose flushes.
        }

        using (var log = DurableLog.Open(options))
        {
            Assert.Equal(1001, log.NextIndex);
            Assert.Equal(Data.Payload(1000, 10), log.Read(1000).Payload.ToArray());
            AssertEntries(log, 0, 1000, i => (int)(i % 300), i => (byte)i);
        }
    }

    [Fact]
    public async Task SmallSegments_RollOverAndReadAcrossSegments()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 4096);
        var sizes = new List<int>();
        await using (var log = DurableLog.Open(options))
        {
            for (int i = 0; i < 600; i++)
            {
                int size = i == 300 ? 10_000 : (i * 37) % 500;
                sizes.Add(size);
                log.Append((byte)(i % 5), Data.Payload(i, size));
                if (i % 50 == 0)
                {
                    await log.FlushAsync(Ct);
                }
            }

            await log.FlushAsync(Ct);
            Assert.True(log.SegmentCount > 20, $"only {log.SegmentCount} segments");
            AssertEntries(log, 0, 600, i => sizes[(int)i], i => (byte)(i % 5));

            // Ranges that start anywhere and cross segment boundaries.
            for (int from = 0; from < 600; from += 41)
            {
                IReadOnlyList<StoredEntry> range = log.ReadRange(from, 100, int.MaxValue);
                Assert.Equal(Math.Min(100, 600 - from), range.Count);
                for (int k = 0; k < range.Count; k++)
                {
                    Assert.Equal(from + k, range[k].Index);
                    Assert.Equal(Data.Payload(from + k, sizes[from + k]), range[k].Payload.ToArray());
                }
            }
        }

        string[] files = dir.SegmentFiles();
        Assert.Equal("00000000000000000000.seg", Path.GetFileName(files[0]));
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.EndsWith(".tmp", StringComparison.Ordinal));

        // The oversized entry got a segment of its own that is big enough.
        string big = dir.SegmentPath(300);
        Assert.True(File.Exists(big));
        Assert.True(new FileInfo(big).Length >= 10_000);

        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(600, log.NextIndex);
            AssertEntries(log, 0, 600, i => sizes[(int)i], i => (byte)(i % 5));
            Assert.Equal(600, log.Append(9, Data.Payload(600, 3000)));
            await log.FlushAsync(Ct);
            Assert.Equal(Data.Payload(600, 3000), log.Read(600).Payload.ToArray());
        }
    }

    [Fact]
    public async Task TrimBefore_DeletesWholeOldSegmentsAndKeepsTheRestReadableAcrossReopen()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 4096);
        long first;
        await using (var log = DurableLog.Open(options))
        {
            for (int i = 0; i < 500; i++)
            {
                log.Append((byte)i, Data.Payload(i, 100));
            }

            await log.FlushAsync(Ct);
            int before = log.SegmentCount;
            first = log.TrimBefore(250);
            Assert.Equal(first, log.FirstIndex);
            Assert.InRange(first, 200, 250);
            Assert.True(log.SegmentCount < before);
            Assert.Equal(first, long.Parse(Path.GetFileNameWithoutExtension(dir.SegmentFiles()[0]), System.Globalization.CultureInfo.InvariantCulture));
            Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(first - 1));
            Assert.Throws<ArgumentOutOfRangeException>(() => log.ReadRange(0, 10));
            AssertEntries(log, first, 500, _ => 100, i => (byte)i);

            // Trimming never removes the segment being written.
            log.TrimBefore(10_000);
            Assert.Equal(1, log.SegmentCount);
            Assert.Equal(500, log.Append(0, Data.Payload(500, 100)));
            first = log.FirstIndex;
        }

        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(first, log.FirstIndex);
            Assert.Equal(501, log.NextIndex);
            AssertEntries(log, first, 500, _ => 100, i => (byte)i);
        }
    }

    [Fact]
    public async Task A_new_log_can_start_at_a_given_index_and_keeps_it_across_reopen()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 4096);
        options.StartIndex = 7_000;
        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal((7_000L, 7_000L), (log.FirstIndex, log.NextIndex));
            for (int i = 0; i < 100; i++)
            {
                Assert.Equal(7_000 + i, log.Append((byte)i, Data.Payload(7_000 + i, 100)));
            }

            await log.FlushAsync(Ct);
            Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(6_999));
        }

        options.StartIndex = 0; // ignored once the directory holds segments
        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal((7_000L, 7_100L), (log.FirstIndex, log.NextIndex));
            AssertEntries(log, 7_000, 7_100, _ => 100, i => (byte)(i - 7_000));
        }
    }

    [Fact]
    public async Task NewLog_StartsWithASmallFirstSegmentThenRollsToFullSizedPreparedSegments()
    {
        using var dir = new TempDirectory();
        var options = new DurableLogOptions { Directory = dir.Path, Fsync = false };
        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(4L << 20, new FileInfo(dir.SegmentPath(0)).Length);
            for (int i = 0; i < 60; i++)
            {
                log.Append(0, Data.Payload(i, 100_000));
            }

            await log.FlushAsync(Ct);
            Assert.Equal(2, log.SegmentCount);
        }

        string[] files = dir.SegmentFiles();
        Assert.Equal(2, files.Length);
        Assert.Equal(DurableLogOptions.DEFAULT_SEGMENT_SIZE, new FileInfo(files[1]).Length);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(60, log.NextIndex);
            AssertEntries(log, 0, 60, _ => 100_000, _ => 0);
        }
    }

    [Fact]
    public async Task SparseIndexEviction_ReadsStillFindEveryEntry()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, segmentSize: 4096);
        options.SparseIndexCacheSegments = 1;
        await using var log = DurableLog.Open(options);
        for (int i = 0; i < 3000; i++)
        {
            log.Append(0, Data.Payload(i, 40 + (i % 90)));
        }

        await log.FlushAsync(Ct);
        var random = new Random(42);
        for (int k = 0; k < 2000; k++)
        {
            long i = random.Next(3000);
            Assert.Equal(Data.Payload(i, 40 + (int)(i % 90)), log.Read(i).Payload.ToArray());
        }
    }

    [Fact]
    public async Task ReadRange_RespectsMaxEntriesAndMaxBytesButReturnsAtLeastOne()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir));
        for (int i = 0; i < 100; i++)
        {
            log.Append(0, Data.Payload(i, 100));
        }

        // Half on disk, half in the buffer.
        await log.FlushAsync(Ct);
        for (int i = 100; i < 200; i++)
        {
            log.Append(0, Data.Payload(i, 100));
        }

        Assert.Equal(10, log.ReadRange(95, 10).Count);
        Assert.Equal(5, log.ReadRange(90, 1000, maxBytes: 500).Count);
        Assert.Equal(5, log.ReadRange(98, 1000, maxBytes: 550).Count);
        Assert.Single(log.ReadRange(150, 1000, maxBytes: 1));
        Assert.Equal(50, log.ReadRange(150, 1000).Count);
        Assert.Empty(log.ReadRange(200, 10));
        Assert.Equal(200, log.ReadRange(0, 1000).Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.ReadRange(-1, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.ReadRange(0, 0));
    }

    [Fact]
    public async Task Read_OutOfRange_Throws()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(0));
        log.Append(0, [1, 2, 3]);
        Assert.Equal(new byte[] { 1, 2, 3 }, log.Read(0).Payload.ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(long.MaxValue));
        await log.FlushAsync(Ct);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(1));
    }

    [Fact]
    public async Task EmptyPayloads_AreStoredAndRecovered()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true);
        await using (var log = DurableLog.Open(options))
        {
            for (int i = 0; i < 100; i++)
            {
                log.Append((byte)i, ReadOnlySpan<byte>.Empty);
            }
        }

        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(100, log.NextIndex);
            StoredEntry entry = log.Read(42);
            Assert.Equal(42, entry.Kind);
            Assert.True(entry.Payload.IsEmpty);
        }
    }

    [Fact]
    public async Task AfterDispose_AppendAndReadThrowAndDisposeIsIdempotent()
    {
        using var dir = new TempDirectory();
        var log = DurableLog.Open(Data.Options(dir));
        log.Append(0, [1]);
        await log.DisposeAsync();
        log.Dispose();
        Assert.Throws<ObjectDisposedException>(() => log.Append(0, [1]));
        Assert.Throws<ObjectDisposedException>(() => log.Read(0));
        Assert.Equal(1, log.DurableIndex);
        Assert.Equal(1, await log.FlushAsync(Ct));
    }

    [Fact]
    public void SecondOpenOfTheSameDirectory_IsRefused()
    {
        using var dir = new TempDirectory();
        using var log = DurableLog.Open(Data.Options(dir));
        Assert.ThrowsAny<IOException>(() => DurableLog.Open(Data.Options(dir)));
    }

    [Fact]
    public async Task FlushAsync_CompletesAsynchronouslyOffTheWriterThread()
    {
        using var dir = new TempDirectory();
        await using var log = DurableLog.Open(Data.Options(dir, fsync: true));
        log.Append(0, [1]);
        ValueTask<long> flush = log.FlushAsync(Ct);
        Assert.False(flush.IsCompleted && Thread.CurrentThread.Name?.StartsWith("SpecLog.Storage writer", StringComparison.Ordinal) == true);
        await flush;
        Assert.DoesNotContain("SpecLog.Storage writer", Thread.CurrentThread.Name ?? string.Empty, StringComparison.Ordinal);
    }

    internal static void AssertEntries(DurableLog log, long from, long to, Func<long, int>? size = null, Func<long, byte>? kind = null)
    {
        size ??= i => s_sizes[(int)i];
        kind ??= i => (byte)(i * 17);
        for (long i = from; i < to; i++)
        {
            StoredEntry entry = log.Read(i);
            Assert.Equal(i, entry.Index);
            Assert.Equal(kind(i), entry.Kind);
            Assert.Equal(Data.Payload(i, size(i)), entry.Payload.ToArray());
        }
    }
}
