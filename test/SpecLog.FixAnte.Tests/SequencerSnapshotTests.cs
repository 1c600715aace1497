using System.Collections;
using System.Reflection;

namespace SpecLog.FixAnte.Tests;

/// <summary>
/// Snapshots and trims of the sequencer state: a state restored from a snapshot, and a state whose history was
/// truncated by a trim, apply the rest of a realistic report sequence (from the end-to-end simulation, with joins,
/// leaves, failures and rejoins) exactly as the untouched original does.
/// </summary>
public sealed class SequencerSnapshotTests(ITestOutputHelper output)
{
    public static TheoryData<int, string> Cases => new()
    {
        { 11, "steady" },
        { 12, "failures" },
        { 13, "changes" },
        { 14, "failures" },
        { 15, "steady" },
    };

    private static SimulationLoad Load(string name) => name switch
    {
        "failures" => new SimulationLoad { ShardFailures = [(40_000, 2), (110_000, 2)], ShardRejoins = [(70_000, 2), (140_000, 2)] },
        "changes" => new SimulationLoad { ShardChanges = [(30_000, ShardControl.Join, 4), (90_000, ShardControl.Leave, 1)] },
        _ => new SimulationLoad(),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_restored_snapshot_and_a_trimmed_history_apply_the_rest_of_the_reports_exactly_as_the_original(int seed, string load)
    {
        output.WriteLine($"seed {seed}, load {load}");
        var sim = new Simulation(seed, OrderingMode.FixAnte, Load(load));
        sim.Run();
        var reports = sim.Applied.Select(a => a.Report).ToList();
        var rng = new Random(seed);
        var snapshotAt = rng.Next(reports.Count / 4, reports.Count * 3 / 4);
        var trimAt = rng.Next(reports.Count / 8, snapshotAt);
        output.WriteLine($"{reports.Count} reports; trim after {trimAt}, snapshot after {snapshotAt}");

        // The reference never trims; the other trims half its committed GSNs away, then is snapshotted and restored.
        var reference = new SequencerState(sim.Options, Load(load).InitialShards);
        var trimmed = new SequencerState(sim.Options, Load(load).InitialShards);
        reference.Initialize(new SequencerOutput());
        trimmed.Initialize(new SequencerOutput());
        SequencerState? restored = null;
        for (var i = 0; i < reports.Count; i++)
        {
            if (i == trimAt)
            {
                var gsn = trimmed.CommittedGsn / 2;
                var trim = new SequencerOutput();
                trimmed.Apply(ShardReport.ForControl(ShardControl.Trim, 0, 1, gsn), trim);
                Assert.True(trimmed.History.First > 0, $"a trim below GSN {gsn} of {trimmed.History.Count} windows dropped none");
                Assert.Empty(trim.NewWindows);
                output.WriteLine($"trimmed below GSN {gsn}: history keeps windows {trimmed.History.First}..{trimmed.History.Count - 1}");
            }

            if (i == snapshotAt)
            {
                restored = SequencerState.Restore(sim.Options, trimmed.Snapshot());
                AssertSameState(trimmed, restored);
            }

            var expected = Apply(reference, reports[i]);
            Assert.Equal(sim.Applied[i].Output, expected); // the replay is the simulation's own
            Assert.Equal(expected, Apply(trimmed, reports[i]));
            if (restored is not null)
            {
                Assert.Equal(expected, Apply(restored, reports[i]));
            }
        }

        AssertSameState(trimmed, restored!);
        Assert.Equal(reference.CommittedGsn, restored!.CommittedGsn);
        Assert.Equal(reference.History.Count, restored.History.Count);
        Assert.True(restored.History.First > 0);
    }

    [Fact]
    public void A_history_started_from_another_ones_base_answers_every_retained_position_alike()
    {
        var sim = new Simulation(21, OrderingMode.FixAnte, Load("failures"));
        sim.Run();
        var full = sim.Sequencer.History;
        var copy = new WindowHistory();
        copy.StartAt(new WindowHistory().Base()); // an empty base: nothing changes
        foreach (var w in full.Windows)
        {
            copy.Add(w);
        }

        var cut = full.Count / 2;
        copy.TruncateBelow(cut);
        Assert.Equal(cut, copy.First);
        var started = new WindowHistory();
        Assert.True(started.StartAt(copy.Base()));
        Assert.Equal(copy.Windows.Count, started.AddRange(full.WindowsFrom(cut)));
        foreach (var h in new[] { copy, started })
        {
            Assert.Equal(full.Count, h.Count);
            Assert.Equal(full[cut].StartGsn, h.FirstGsn);
            for (var gsn = h.FirstGsn; gsn < full.KnownEndGsn; gsn += 7)
            {
                var (shard, slot) = full.Locate(gsn);
                Assert.Equal((shard, slot), h.Locate(gsn));
                Assert.Equal(gsn, h.GsnOfSlot(shard, slot));
                Assert.Equal(full.IsVoid(shard, slot), h.IsVoid(shard, slot));
                Assert.Equal(full.SlotsBefore(shard, gsn), h.SlotsBefore(shard, gsn));
            }

            for (var s = 0; s < full.Last!.ShardCount; s++)
            {
                Assert.Equal(full.KnownSlots(s), h.KnownSlots(s));
                Assert.Equal(full.VoidsOf(s), h.VoidsOf(s));
                Assert.Equal(full.FailureVoidOf(s), h.FailureVoidOf(s));
                Assert.Equal(full.LatestVoidIsRejoin(s), h.LatestVoidIsRejoin(s));
            }
        }

        // Below the base: a clear error naming the retained range, not a wrong answer.
        var below = Assert.Throws<ArgumentOutOfRangeException>(() => started.Locate(started.FirstGsn - 1));
        Assert.Contains("trimmed", below.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => started[cut - 1]);
    }

    private static string Apply(SequencerState state, ShardReport report)
    {
        var o = new SequencerOutput();
        state.Apply(report, o);
        return Simulation.Describe(o);
    }

    /// <summary>Every field of the two states holds the same value (by reflection, so a field the snapshot forgets fails here).</summary>
    private static void AssertSameState(SequencerState a, SequencerState b)
    {
        foreach (var field in typeof(SequencerState).GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public))
        {
            Assert.True(Same(field.GetValue(a), field.GetValue(b)), $"field {field.Name} differs after the snapshot");
        }
    }

    private static bool Same(object? x, object? y) => (x, y) switch
    {
        (null, null) => true,
        (WindowHistory h1, WindowHistory h2) => h1.First == h2.First && h1.Count == h2.Count
            && h1.Windows.Select(w => w.ToString()).SequenceEqual(h2.Windows.Select(w => w.ToString()))
            && Enumerable.Range(0, h1.Last?.ShardCount ?? 0).All(s => h1.VoidsOf(s).SequenceEqual(h2.VoidsOf(s)) && h1.LatestVoidIsRejoin(s) == h2.LatestVoidIsRejoin(s)),
        (FixAnteOptions, FixAnteOptions) => ReferenceEquals(x, y) || x.ToString() == y.ToString(),
        (IEnumerable e1, IEnumerable e2) when x is not string => e1.Cast<object?>().Zip(e2.Cast<object?>()).All(p => Same(p.First, p.Second)) && e1.Cast<object?>().Count() == e2.Cast<object?>().Count(),
        _ => Equals(x, y),
    };
}
