using System.CommandLine;
using SpecLog.Cli;

var gateway = new Option<int>("--gateway") { Description = "Gateway port of a silo on this machine", DefaultValueFactory = _ => 30000, Recursive = true };
var azure = new Option<string?>("--azure") { Description = "Azure Storage connection string of a cluster's membership table (instead of --gateway)", Recursive = true };
var clusterId = new Option<string>("--cluster-id") { Description = "Orleans cluster and service id (default dev with --gateway, speclog with --azure)", Recursive = true };
var timeout = new Option<double>("--connect-timeout") { Description = "Seconds to wait for a silo to answer", DefaultValueFactory = _ => 10, Recursive = true };

if (Console.IsOutputRedirected)
{
    Spectre.Console.AnsiConsole.Profile.Width = 200; // a pipe or a file: no terminal to wrap the tables to
}

var root = new RootCommand("speclog: look at and feed a SpecLogOrleans log.");
root.Options.Add(gateway);
root.Options.Add(azure);
root.Options.Add(clusterId);
root.Options.Add(timeout);

Func<ParseResult, CancellationToken, Task<LogConnection>> connect = (parse, ct) =>
{
    var conn = parse.GetValue(azure);
    var id = parse.GetValue(clusterId) ?? (conn is null ? "dev" : "speclog");
    return LogConnection.OpenAsync(parse.GetValue(gateway), conn, id, TimeSpan.FromSeconds(parse.GetValue(timeout)), ct);
};

root.Subcommands.Add(StatusCommand.Create(connect));
root.Subcommands.Add(TailCommand.Create(connect));
root.Subcommands.Add(AppendCommand.Create(connect));
root.Subcommands.Add(ReadCommand.Create(connect));
root.Subcommands.Add(AdminCommands.Trim(connect));
root.Subcommands.Add(AdminCommands.Shards(connect));
return await root.Parse(args).InvokeAsync();
