namespace SpecLog.Storage.Tests;

public sealed class RecoveryTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static int Size(long i) => 20 + (int)(i * 13 % 180);

    /// <summary>Appends <paramref name="count"/> entries, flushing every <paramref name="flushEvery"/>, then crashes (no seal frame).</summary>
    private static async Task<long[]> WriteThenCrash(DurableLogOptions options, int count, int flushEvery)
    {
        var log = DurableLog.Open(options);
        for (int i = 0; i < count; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
            if ((i + 1) % flushEvery == 0)
            {
                await log.FlushAsync(Ct);
            }
        }

        await log.FlushAsync(Ct);
        log.SimulateCrash();
        return Data.FrameOffsets(Enumerable.Range(0, count).Select(i => Size(i)).ToArray());
    }

    private static async Task AssertRecoveredAndAppendable(DurableLogOptions options, long expectedNext)
    {
        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(expectedNext, log.NextIndex);
            Assert.Equal(expectedNext, log.DurableIndex);
            DurableLogTests.AssertEntries(log, 0, expectedNext, Size, i => (byte)i);
            for (long i = expectedNext; i < expectedNext + 5; i++)
            {
                Assert.Equal(i, log.Append((byte)i, Data.Payload(i, Size(i))));
            }

            await log.FlushAsync(Ct);
        }

        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(expectedNext + 5, log.NextIndex);
            DurableLogTests.AssertEntries(log, 0, expectedNext + 5, Size, i => (byte)i);
        }
    }

    [Theory]
    [InlineData(SegmentPreallocation.ZeroFill)]
    [InlineData(SegmentPreallocation.Fallocate)]
    [InlineData(SegmentPreallocation.None)]
    public async Task TornTail_FileCutInTheMiddleOfTheLastFrame_RecoversToTheLastValidEntry(SegmentPreallocation preallocation)
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        options.Preallocation = preallocation;
        long[] offsets = await WriteThenCrash(options, 20, 1);

        Data.SetLength(dir.SegmentPath(0), offsets[19] + 30);
        await AssertRecoveredAndAppendable(options, 19);
    }

    [Fact]
    public async Task TornTail_GarbageOverTheLastFrame_RecoversToTheLastValidEntryAndZeroesTheRest()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        long[] offsets = await WriteThenCrash(options, 20, 1);

        byte[] garbage = Data.Payload(999, (int)(offsets[20] - offsets[19]));
        Data.Patch(dir.SegmentPath(0), offsets[19], garbage);

        await using (var log = DurableLog.Open(options))
        {
            Assert.Equal(19, log.NextIndex);
        }

        await AssertRecoveredAndAppendable(options, 19);
    }

    [Fact]
    public async Task TornTail_HeaderOfTheLastFrameDamaged_RecoversToTheLastValidEntry()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        long[] offsets = await WriteThenCrash(options, 20, 1);
        Data.FlipByte(dir.SegmentPath(0), offsets[19] + 1);
        await AssertRecoveredAndAppendable(options, 19);
    }

    [Fact]
    public async Task TornLastBatch_WithLaterFramesOfTheSameBatchIntact_IsATornTail()
    {
        // Entries 10..19 went to disk in one write that was never acknowledged as a whole: after a crash the
        // page cache may have written back any subset of its pages, so entry 12 being torn while 13..19 are intact
        // is a legal crash state, not corruption.
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        var log = DurableLog.Open(options);
        for (int i = 0; i < 10; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
            await log.FlushAsync(Ct);
        }

        for (int i = 10; i < 20; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
        }

        await log.FlushAsync(Ct);
        log.SimulateCrash();
        long[] offsets = Data.FrameOffsets(Enumerable.Range(0, 20).Select(i => Size(i)).ToArray());
        Data.FlipByte(dir.SegmentPath(0), offsets[12] + Frame.HeaderSize + 3);

        await AssertRecoveredAndAppendable(options, 12);
    }

    [Fact]
    public async Task CorruptionOfAnEarlyFrame_WithLaterBatchesValid_ThrowsNamingFileAndOffset()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        long[] offsets = await WriteThenCrash(options, 100, 10);
        Data.FlipByte(dir.SegmentPath(0), offsets[5] + Frame.HeaderSize + 2);

        var ex = Assert.Throws<InvalidDataException>(() => DurableLog.Open(options));
        Assert.Contains(dir.SegmentPath(0), ex.Message, StringComparison.Ordinal);
        Assert.Contains($"offset {offsets[5]}", ex.Message, StringComparison.Ordinal);

        // Refusing to open must not have modified the files: repairing the byte makes the log whole again.
        Data.FlipByte(dir.SegmentPath(0), offsets[5] + Frame.HeaderSize + 2);
        await using var log = DurableLog.Open(options);
        Assert.Equal(100, log.NextIndex);
    }

    [Fact]
    public async Task DamageInTheOnlyBatch_AfterACleanShutdown_Throws()
    {
        // The seal frame written by Dispose proves that the last batch was durable, so damage there is corruption.
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        await using (var log = DurableLog.Open(options))
        {
            for (int i = 0; i < 10; i++)
            {
                log.Append((byte)i, Data.Payload(i, Size(i)));
            }
        }

        long[] offsets = Data.FrameOffsets(Enumerable.Range(0, 10).Select(i => Size(i)).ToArray());
        Data.FlipByte(dir.SegmentPath(0), offsets[3] + Frame.HeaderSize);
        Assert.Throws<InvalidDataException>(() => DurableLog.Open(options));
    }

    [Fact]
    public async Task DamageInAnEarlierSegment_WhileALaterSegmentHoldsEntries_Throws()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 4096);
        await using (var log = DurableLog.Open(options))
        {
            for (int i = 0; i < 200; i++)
            {
                log.Append((byte)i, Data.Payload(i, Size(i)));
            }

            await log.FlushAsync(Ct);
            Assert.True(log.SegmentCount >= 3);
        }

        string[] files = dir.SegmentFiles();
        long[] offsets = Data.FrameOffsets(Enumerable.Range(0, 200).Select(i => Size(i)).ToArray());
        long firstOfSecond = long.Parse(Path.GetFileNameWithoutExtension(files[1]), System.Globalization.CultureInfo.InvariantCulture);

        // Damage the last entry of the first segment.
        Data.FlipByte(files[0], offsets[firstOfSecond - 1] + Frame.HeaderSize);
        var ex = Assert.Throws<InvalidDataException>(() => DurableLog.Open(options));
        Assert.Contains(files[0], ex.Message, StringComparison.Ordinal);
        Data.FlipByte(files[0], offsets[firstOfSecond - 1] + Frame.HeaderSize);

        // Garbage in the unused end of the first segment is also corruption, since later segments exist.
        long end = offsets[firstOfSecond];
        Data.Patch(files[0], end, [1, 2, 3, 4, 5, 6, 7, 8]);
        Assert.Throws<InvalidDataException>(() => DurableLog.Open(options));
        Data.Patch(files[0], end, new byte[8]);

        // A deleted middle segment is a gap.
        File.Move(files[1], files[1] + ".bak");
        Assert.Throws<InvalidDataException>(() => DurableLog.Open(options));
        File.Move(files[1] + ".bak", files[1]);

        await using var reopened = DurableLog.Open(options);
        Assert.Equal(200, reopened.NextIndex);
    }

    [Fact]
    public async Task CrashWithUnflushedEntries_KeepsTheDurablePrefixAndContinuesNumbering()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        var log = DurableLog.Open(options);
        for (int i = 0; i < 10; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
        }

        await log.FlushAsync(Ct);
        for (int i = 10; i < 15; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
        }

        log.SimulateCrash();
        await AssertRecoveredAndAppendable(options, 10);
    }

    [Fact]
    public async Task TrailingSegmentWithoutEntries_IsRemovedOrReused()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 64 << 10);
        await WriteThenCrash(options, 30, 7);

        // A segment file named for an index that does not follow, holding only zeros (e.g. a crash during a roll).
        File.WriteAllBytes(dir.SegmentPath(5000), new byte[8192]);

        // And a leftover spare file.
        File.WriteAllBytes(Path.Combine(dir.Path, "spare-1-1.tmp"), new byte[4096]);
        await AssertRecoveredAndAppendable(options, 30);
        Assert.False(File.Exists(dir.SegmentPath(5000)));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public async Task NewSegmentWithATornFirstFrame_IsATornTail()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 4096);
        var log = DurableLog.Open(options);
        for (int i = 0; i < 100; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
            await log.FlushAsync(Ct);
        }

        log.SimulateCrash();
        string last = dir.SegmentFiles()[^1];
        long lastBase = long.Parse(Path.GetFileNameWithoutExtension(last), System.Globalization.CultureInfo.InvariantCulture);

        // Only the first frame of the newest segment is damaged; later frames there were written in later batches,
        // so they prove it durable: corruption.
        Data.FlipByte(last, 2);
        if (lastBase < 99)
        {
            Assert.Throws<InvalidDataException>(() => DurableLog.Open(options));
            Data.FlipByte(last, 2);
        }

        // Now make the newest segment hold only a torn first frame.
        Data.Patch(last, Frame.Length(Size(lastBase)), new byte[4096 - Frame.Length(Size(lastBase))]);
        Data.FlipByte(last, 2);
        await AssertRecoveredAndAppendable(options, lastBase);
    }

    [Fact]
    public void UnexpectedSegmentFileName_Throws()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(Path.Combine(dir.Path, "12.seg"), new byte[16]);
        Assert.Throws<InvalidDataException>(() => DurableLog.Open(Data.Options(dir)));
    }

    [Fact]
    public async Task CrashAfterWriteBehind_RecoversWrittenEntriesIntact()
    {
        using var dir = new TempDirectory();
        var options = Data.Options(dir, fsync: true, segmentSize: 1 << 20);
        options.WriteBehindThreshold = 16 << 10;
        var log = DurableLog.Open(options);
        for (int i = 0; i < 1000; i++)
        {
            log.Append((byte)i, Data.Payload(i, Size(i)));
        }

        log.SimulateCrash();
        await using var reopened = DurableLog.Open(options);
        Assert.InRange(reopened.NextIndex, 0, 1000);
        DurableLogTests.AssertEntries(reopened, 0, reopened.NextIndex, Size, i => (byte)i);
    }
}
