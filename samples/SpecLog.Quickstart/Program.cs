using SpecLog.Quickstart;

QuickstartOptions options;
try
{
    options = QuickstartOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine();
    Console.Error.WriteLine(QuickstartOptions.Usage);
    return 2;
}

if (options.Help)
{
    Console.WriteLine(QuickstartOptions.Usage);
    return 0;
}

LogConnection connection;
try
{
    connection = options.Embedded
        ? await LogConnection.StartEmbeddedAsync(options, CancellationToken.None)
        : await LogConnection.ConnectAsync(options, CancellationToken.None);
}
catch (Exception e) when (!options.Embedded)
{
    Console.Error.WriteLine($"Could not connect to the silo at {options.Gateway}: {e.GetType().Name}: {e.Message}");
    Console.Error.WriteLine("Start one with `dotnet run --project src/SpecLog.Silo`, or run this sample with --embedded.");
    return 3;
}

await using (connection)
{
    Console.WriteLine($"Connected to {connection.Description}.");
    var run = new LoadRun(options, connection.Client, connection.Grains);
    return await run.RunAsync(connection.Stopping);
}
