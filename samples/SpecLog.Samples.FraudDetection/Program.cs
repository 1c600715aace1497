using SpecLog.Samples;
using SpecLog.Samples.FraudDetection;

const string Usage = $"""
    Fraud detection on SpecLog: producers append payments; a speculative consumer keeps per-user statistics, scores
    every payment the moment it is delivered and releases its verdict once the payment's position is confirmed
    (alerts for outliers). Run embedded (default), it runs the same workload on SpecLog and on Scalog mode and prints
    their end-to-end latency side by side (the first second of each run is not timed: it warms the process up).

    Usage: dotnet run -c Release --project samples/SpecLog.Samples.FraudDetection -- [options]

      --scoring-ms <ms>       CPU time the model spends per payment (default 1)
    {SampleProgram.CommonUsage}
    """;

return await SampleProgram.MainAsync(args, Usage, options =>
{
    FraudModel.ScoringTime = TimeSpan.FromMilliseconds(options.Number("--scoring-ms", 1, 0, 1000));
    return FraudModel.App();
});
