using System.Collections.Immutable;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;

namespace SpecLog.Cluster.Tests;

/// <summary>The sequencer's on-disk window records, with and without an adaptive cut interval.</summary>
public sealed class WindowCodecTests
{
    [Theory]
    [InlineData(1, CutLayout.Blocked)]
    [InlineData(2, CutLayout.Blocked)]
    [InlineData(1, CutLayout.Interleaved)]
    [InlineData(8, CutLayout.Interleaved)]
    public void A_window_round_trips_with_its_cut_interval_factor_and_layout(int factor, CutLayout layout)
    {
        var w = new WindowConfig(7, 1234, 700, 100, ImmutableArray.Create(3, 0, 5), viewId: 2, cutIntervalFactor: factor, layout: layout);
        var back = WindowCodec.Decode(WindowCodec.Encode(w));
        Assert.Equal((w.Window, w.StartGsn, w.FirstCut, w.CutsPerWindow, w.ViewId, w.CutIntervalFactor, w.Layout), (back.Window, back.StartGsn, back.FirstCut, back.CutsPerWindow, back.ViewId, back.CutIntervalFactor, back.Layout));
        Assert.Equal(w.GsnOf(2, 7), back.GsnOf(2, 7));
        Assert.Equal(w.Quotas, back.Quotas);
    }

    [Fact]
    public void A_record_written_before_cut_intervals_existed_reads_as_factor_one()
    {
        var w = new WindowConfig(1, 10, 5, 5, ImmutableArray.Create(1, 1));
        var bytes = WindowCodec.Encode(w);
        Assert.Equal(40 + 4 * 2, bytes.Length); // the default factor keeps the old layout byte for byte
        Assert.Equal(1, WindowCodec.Decode(bytes).CutIntervalFactor);
    }

    [Fact]
    public void A_record_of_the_wrong_length_is_refused_with_a_clear_error()
    {
        var bytes = WindowCodec.Encode(new WindowConfig(1, 10, 5, 5, ImmutableArray.Create(1, 1), cutIntervalFactor: 2));
        var e = Assert.Throws<InvalidDataException>(() => WindowCodec.Decode(bytes.AsSpan(0, bytes.Length - 1)));
        Assert.Contains("2 shards", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Departed_and_failed_shards_round_trip_on_disk_and_on_the_wire()
    {
        var w = new WindowConfig(9, 500, 90, 10, ImmutableArray.Create(2, 0, 0, 4), departed: [1, 2], voids: [new ShardVoid(2, 77)]);
        var back = WindowCodec.Decode(WindowCodec.Encode(w));
        Assert.Equal(w.ToString(), back.ToString());
        Assert.Equal([1, 2], back.Departed);
        Assert.Equal([new ShardVoid(2, 77)], back.Voids);
        var leftOnly = new WindowConfig(9, 500, 90, 10, ImmutableArray.Create(2, 0, 4), departed: [1]);
        Assert.Equal([1], WindowCodec.Decode(WindowCodec.Encode(leftOnly)).Departed);
        Assert.Empty(WindowCodec.Decode(WindowCodec.Encode(leftOnly)).Voids);

        var converter = new WindowConfigConverter();
        var wire = converter.ConvertFromSurrogate(converter.ConvertToSurrogate(w));
        Assert.Equal(w.ToString(), wire.ToString());
        Assert.Equal(w.Voids, wire.Voids);
    }

    [Fact]
    public void Rejoin_voids_round_trip_with_and_without_departed_shards_and_beside_a_failure()
    {
        var converter = new WindowConfigConverter();
        WindowConfig[] windows =
        [
            // A rejoin alone: nobody departs in the window.
            new(12, 900, 120, 10, ImmutableArray.Create(2, 1, 3), voids: [new ShardVoid(1, 40, 55)]),
            // A rejoin (shard 1) while another shard (2) fails and departs with the same window.
            new(13, 990, 130, 10, ImmutableArray.Create(2, 1, 0), departed: [2], voids: [new ShardVoid(1, 40, 40), new ShardVoid(2, 500)]),
        ];
        foreach (var w in windows)
        {
            var back = WindowCodec.Decode(WindowCodec.Encode(w));
            Assert.Equal(w.ToString(), back.ToString());
            Assert.Equal(w.Voids, back.Voids);
            Assert.Equal(w.Departed, back.Departed);
            var wire = converter.ConvertFromSurrogate(converter.ConvertToSurrogate(w));
            Assert.Equal(w.Voids, wire.Voids);
        }

        Assert.True(windows[0].Voids[0].IsRejoin && !windows[1].Voids[1].IsRejoin);
        Assert.Throws<ArgumentException>(() => new WindowConfig(0, 0, 0, 10, ImmutableArray.Create(1, 0), departed: [1], voids: [new ShardVoid(1, 5, 9)])); // a rejoining shard is a member
        Assert.Throws<ArgumentException>(() => new WindowConfig(0, 0, 0, 10, ImmutableArray.Create(1, 1), voids: [new ShardVoid(1, 5)])); // a failed one departs
        Assert.Throws<ArgumentException>(() => new WindowConfig(0, 0, 0, 10, ImmutableArray.Create(1, 1), voids: [new ShardVoid(1, 9, 5)])); // ends before it starts
    }
}
