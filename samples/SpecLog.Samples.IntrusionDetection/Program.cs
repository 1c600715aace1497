using SpecLog.Samples;
using SpecLog.Samples.IntrusionDetection;

const string Usage = $"""
    Intrusion detection on SpecLog: network sensors append readings, each sensor always to the same shard; a speculative
    consumer keeps every sensor's moving average per shard, applies each reading the moment its shard holds it (no wait
    for other shards) and releases its event once the reading's position is confirmed (alerts on anomalies). Run
    embedded (default), it runs the same workload on SpecLog and on Scalog mode and prints their end-to-end latency side
    by side (the first second of each run is not timed: it warms the process up).

    Usage: dotnet run -c Release --project samples/SpecLog.Samples.IntrusionDetection -- [options]

      --sensor-shards <n>     shards the sensors are spread over (default 4: the embedded log's shards)
    {SampleProgram.CommonUsage}
    """;

return await SampleProgram.MainAsync(args, Usage, options =>
{
    return SensorModel.App((int)options.Number("--sensor-shards", 4, 1, 256));
});
