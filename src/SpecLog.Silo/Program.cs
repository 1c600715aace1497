// The SpecLogOrleans silo: `dotnet run --project src/SpecLog.Silo` starts a single-silo cluster with the log, the
// Orleans dashboard and the settings of silo-config/appsettings.json (see silo-config/README.md).
return await SpecLog.Silo.SiloHost.RunAsync(args);
