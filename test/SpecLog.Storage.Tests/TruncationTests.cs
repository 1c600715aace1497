namespace SpecLog.Storage.Tests;

/// <summary>Opening a log with <see cref="DurableLogOptions.TruncateFrom"/> drops the entries from that index on, durably, wherever the cut falls.</summary>
public sealed class TruncationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(SegmentPreallocation.ZeroFill, 600, 1400)] // the cut inside a middle segment; later segments deleted
    [InlineData(SegmentPreallocation.ZeroFill, 0, 1400)]
    [InlineData(SegmentPreallocation.None, 1399, 1400)]
    [InlineData(SegmentPreallocation.None, 2000, 1400)] // beyond the end: nothing changes
    public async Task Truncated_entries_are_gone_and_new_ones_take_their_indexes_across_reopens(SegmentPreallocation preallocation, long cut, int written)
    {
        using var dir = new TempDirectory();
        var options = new DurableLogOptions { Directory = dir.Path, Fsync = true, SegmentSize = 1 << 20, Preallocation = preallocation };
        await using (var log = DurableLog.Open(options))
        {
            for (var i = 0; i < written; i++)
            {
                log.Append(1, Data.Payload(i, 2000));
            }

            await log.FlushAsync(Ct);
            Assert.True(log.SegmentCount > 1, "the entries should span several segments");
        }

        var kept = Math.Min(cut, written);
        await using (var log = DurableLog.Open(new DurableLogOptions { Directory = dir.Path, Fsync = true, SegmentSize = 1 << 20, Preallocation = preallocation, TruncateFrom = cut }))
        {
            Assert.Equal(kept, log.NextIndex);
            for (var i = 0; i < kept; i += 97)
            {
                Assert.Equal(Data.Payload(i, 2000), log.Read(i).Payload.ToArray());
            }

            for (var i = 0; i < 50; i++)
            {
                Assert.Equal(kept + i, log.Append(2, Data.Payload(100_000 + i, 300)));
            }

            await log.FlushAsync(Ct);
        }

        // Reopened as usual: the kept prefix, then the new entries, and nothing of the dropped ones.
        await using (var log = DurableLog.Open(new DurableLogOptions { Directory = dir.Path, Fsync = true, SegmentSize = 1 << 20, Preallocation = preallocation }))
        {
            Assert.Equal(kept + 50, log.NextIndex);
            if (kept > 0)
            {
                Assert.Equal(Data.Payload((int)kept - 1, 2000), log.Read(kept - 1).Payload.ToArray());
            }

            for (var i = 0; i < 50; i++)
            {
                var e = log.Read(kept + i);
                Assert.Equal(2, e.Kind);
                Assert.Equal(Data.Payload(100_000 + i, 300), e.Payload.ToArray());
            }
        }
    }
}
