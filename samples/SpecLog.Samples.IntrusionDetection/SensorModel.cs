using System.Buffers.Binary;
using System.Globalization;
using SpecLog.Consumer;
using SpecLog.Samples;

namespace SpecLog.Samples.IntrusionDetection;

/// <summary>A sensor reading as the log carries it: when it was appended (UTC µs), the sensor, the value in thousandths.</summary>
public readonly record struct Reading(long AppendedAtMicros, int Sensor, int Milli)
{
    public const int Size = 16;

    public byte[] Encode()
    {
        var bytes = new byte[Size];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, AppendedAtMicros);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), Sensor);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), Milli);
        return bytes;
    }

    public static Reading? Decode(ReadOnlySpan<byte> bytes) =>
        bytes.Length == Size
            ? new Reading(BinaryPrimitives.ReadInt64LittleEndian(bytes), BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]), BinaryPrimitives.ReadInt32LittleEndian(bytes[12..]))
            : null;

    /// <summary>
    /// The <paramref name="i"/>-th reading of a deterministic stream: 200 sensors (network probes), values around a
    /// per-sensor level with noise, one in 500 a spike (an intrusion's burst of traffic).
    /// </summary>
    public static Reading Generate(long i, long appendedAtMicros)
    {
        var h = (ulong)(i + 1) * 0xD6E8FEB86659FD93UL;
        h ^= h >> 31;
        var sensor = (int)(h % 200);
        var level = 10_000 + sensor * 97 % 5_000;
        var noise = (int)((h >> 24) % 1_000) - 500;
        var spike = (h >> 44) % 500 == 0;
        return new Reading(appendedAtMicros, sensor, spike ? level * 8 : level + noise);
    }
}

/// <summary>One sensor's exponentially weighted moving average and variance.</summary>
[GenerateSerializer, Alias("samples.intrusion.SensorWindow")]
public sealed class SensorWindow
{
    [Id(0)] public long Count { get; set; }

    [Id(1)] public double Mean { get; set; }

    [Id(2)] public double Variance { get; set; }
}

/// <summary>What the consumer says about a reading: released once the reading's position is confirmed.</summary>
public readonly record struct SensorEvent(int Sensor, int Milli, bool Alert, double Average, long AppendedAtMicros) : ITimedOutput
{
    bool ITimedOutput.IsAlert => Alert;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{(Alert ? "ALERT" : "ok")} sensor {Sensor} {Milli / 1000.0:0.000} (average {Average / 1000.0:0.000})");
}

/// <summary>
/// The application: readings of a sensor always go to the same shard (sensor mod shards), so each shard's state (its
/// sensors' moving averages) is independent and the consumer applies each reading the moment its shard holds it.
/// </summary>
public static class SensorModel
{
    private const double Alpha = 0.05;

    public static Dictionary<int, SensorWindow> NewState() => [];

    /// <summary>
    /// The application as the sample runner and the bench run it: sensor readings spread over <paramref name="shards"/>
    /// shards (sensor mod shards), one state per shard.
    /// </summary>
    public static SampleApp<Dictionary<int, SensorWindow>, SensorEvent> App(int shards) =>
        new("intrusion", NewState, Apply, (i, now) =>
        {
            var reading = Reading.Generate(i, now);
            return (reading.Encode(), reading.Sensor % shards);
        },
        ConsumerOrdering.PerShard);

    /// <summary>An alert when a reading is over 6 moving deviations from its sensor's moving average (after 20 readings).</summary>
    public static Dictionary<int, SensorWindow> Apply(Dictionary<int, SensorWindow> sensors, ConsumedRecord record, OutputBuffer<SensorEvent> outputs)
    {
        if (Reading.Decode(record.Payload.Span) is not { } r)
        {
            return sensors;
        }

        if (!sensors.TryGetValue(r.Sensor, out var w))
        {
            sensors[r.Sensor] = w = new SensorWindow { Mean = r.Milli };
        }

        var deviation = Math.Sqrt(w.Variance);
        var alert = w.Count >= 20 && Math.Abs(r.Milli - w.Mean) > 6 * Math.Max(deviation, 1);
        var diff = r.Milli - w.Mean;
        w.Mean += Alpha * diff;
        w.Variance = (1 - Alpha) * (w.Variance + Alpha * diff * diff);
        w.Count++;
        outputs.Emit(new SensorEvent(r.Sensor, r.Milli, alert, w.Mean, r.AppendedAtMicros));
        return sensors;
    }
}
