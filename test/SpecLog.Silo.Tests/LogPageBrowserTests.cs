using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Playwright;
using SpecLog.Client;

namespace SpecLog.Silo.Tests;

/// <summary>
/// The log's own page in a real browser (Debian's Chromium through Playwright): reached from the Orleans dashboard by
/// its link, behind the dashboard's credentials, it shows a silo's shards, windows, quotas, ordering replicas and
/// subscribers while the log serves appends, and its figures move. Also the dashboard's Grain Details state of the
/// log's grains, and a dashboard exposed beyond localhost without credentials refused at start.
/// </summary>
[Collection(SiloProcessCollection.Name)]
public sealed class LogPageBrowserTests(ITestOutputHelper log)
{
    private const string User = "operator";
    private const string Password = "s3cret-for-the-test";
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 300_000)]
    public async Task The_log_page_is_reached_from_the_dashboard_and_shows_live_figures_of_shards_windows_ordering_and_subscribers()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-logpage-");
        var output = new ConcurrentQueue<string>();
        var port = SiloProcess.FreePort();
        var root = $"http://localhost:{port}";
        try
        {
            // Copilot on one silo: its three ordering replicas share the process, so the page has pilots and views to show.
            await using var silo = SiloProcess.Start("silo", Path.Combine(temp.Path, "data"), 2, output,
                "--Silo:Dashboard:Enabled=true", $"--Silo:Dashboard:Port={port}", "--SpecLog:Replication:Mode=Copilot",
                $"--Silo:Dashboard:Username={User}", $"--Silo:Dashboard:Password={Password}");
            await Waits.UntilAsync(() => silo.IsUp, "the silo is up", StepTimeout, ct);
            await Waits.UntilAsync(() => output.Any(l => l.Contains($"log page: {root}/speclog", StringComparison.Ordinal)), "the banner's log page line (it follows the up line)", StepTimeout, ct);

            // Credentials guard the dashboard and the page; probes and scrapers need none.
            Assert.Equal(HttpStatusCode.Unauthorized, (await SiloHttp.GetAsync($"{root}/speclog", ct)).Code);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SiloHttp.GetAsync($"{root}/dashboard/", ct)).Code);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SiloHttp.GetAsync($"{root}/speclog/api/state", ct, (User, "wrong"))).Code);
            Assert.Equal(HttpStatusCode.OK, (await SiloHttp.GetAsync($"{root}/healthz", ct)).Code);
            Assert.Equal(HttpStatusCode.OK, (await SiloHttp.GetAsync($"{root}/metrics", ct)).Code);

            await using var client = await TestClient.ConnectAsync(silo, StepTimeout, ct);
            using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var appended = 0L;
            var delivered = 0L;
            var producer = Task.Run(async () =>
            {
                while (!load.IsCancellationRequested)
                {
                    await Task.WhenAll(Enumerable.Range(0, 20).Select(i => client.Log.AppendAsync(new byte[] { 7, (byte)i }, cancellationToken: load.Token)));
                    Interlocked.Add(ref appended, 20);
                    await Task.Delay(20, load.Token);
                }
            }, load.Token);
            var consumer = Task.Run(async () =>
            {
                await foreach (var e in client.Log.SubscribeAsync(0, load.Token))
                {
                    if (e is SpeculativeRecord)
                    {
                        Interlocked.Increment(ref delivered);
                    }
                }
            }, load.Token);
            await Waits.UntilAsync(() => Interlocked.Read(ref delivered) > 100, "the subscriber receives records", StepTimeout, ct);

            var (playwright, browser) = await ChromiumBrowser.LaunchAsync(ct);
            using (playwright)
            {
                await using (browser)
                {
                    await using var context = await browser.NewContextAsync(new BrowserNewContextOptions
                    {
                        HttpCredentials = new HttpCredentials { Username = User, Password = Password },
                        ViewportSize = new ViewportSize { Width = 1920, Height = 1200 },
                    });
                    var page = await context.NewPageAsync();
                    page.SetDefaultTimeout((float)StepTimeout.TotalMilliseconds);

                    // From the Orleans dashboard, by the link the silo adds to it.
                    await page.GotoAsync($"{root}/dashboard/");
                    await page.ClickAsync("#speclog-log-page-link");
                    await page.WaitForURLAsync($"{root}/speclog");

                    // Real figures, and they move while the log serves appends.
                    var records = page.Locator("tr[data-shard='0'] td[data-field='durableRecords']");
                    var first = await WaitForNumberAsync(page, records, n => n > 0, ct);
                    var later = await WaitForNumberAsync(page, records, n => n > first, ct);
                    log.WriteLine($"shard 0's records on the page: {first} → {later}");
                    Assert.Equal(2, await page.Locator("#shards tbody tr[data-shard]").CountAsync());
                    Assert.Equal("serving", await page.Locator("tr[data-shard='1'] td[data-field='state']").InnerTextAsync());
                    var quota = await WaitForNumberAsync(page, page.Locator("tr[data-shard='0'] td[data-field='quota']"), n => n >= 1, ct);
                    Assert.True(quota >= 1);
                    await page.WaitForFunctionAsync("() => !document.querySelector(\"tr[data-shard='0'] td[data-field='appendLatency']\").innerText.includes('—')");

                    // Windows and the cut clock: the committed GSN grows; the quota chart has one line per shard.
                    var gsn = page.Locator("[data-fact='committedGsn'] b");
                    var gsn0 = await WaitForNumberAsync(page, gsn, n => n > 0, ct);
                    await WaitForNumberAsync(page, gsn, n => n > gsn0, ct);
                    await WaitForNumberAsync(page, page.Locator("[data-fact='cutsPerSecond'] b"), n => n > 0, ct);
                    Assert.Equal(2, await page.Locator("#quota-chart polyline").CountAsync());

                    // The ordering layer: three Copilot replicas, pilots active, fast-path commits counted.
                    Assert.Equal("Copilot", await page.Locator("[data-fact='replication'] b").InnerTextAsync());
                    Assert.Equal(3, await page.Locator("#ordering tbody tr[data-replica]").CountAsync());
                    await page.WaitForFunctionAsync("() => document.querySelectorAll('#ordering tbody tr[data-replica]').length === 3 && [...document.querySelectorAll('#ordering td')].some(td => td.innerText.includes('(active)'))");
                    var fast = page.Locator("#ordering tbody tr[data-replica] td[data-field='fastCommits']");
                    await page.WaitForFunctionAsync("() => [...document.querySelectorAll(\"#ordering td[data-field='fastCommits']\")].some(td => Number(td.innerText.replace(/,/g, '')) > 0)");
                    Assert.Equal(3, await fast.CountAsync());

                    // The subscriber shows on both shards, with how far behind it is.
                    await page.WaitForFunctionAsync("() => document.querySelectorAll('#subscribers tbody tr td:first-child').length >= 2 && !document.querySelector('#subscribers .empty')");

                    var shot = Environment.GetEnvironmentVariable("SPECLOG_LOG_PAGE_SCREENSHOT") ?? Path.Combine(temp.Path, "log-page.png"); // the README's picture: docs/log-page.png
                    await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
                    log.WriteLine($"screenshot: {shot}");
                }
            }

            // The dashboard's Grain Details panel asks a grain's GetState: the log's grains answer with their status.
            // (The dashboard answers a JSON string that holds the state's JSON.)
            var shard = await GrainStateAsync(root, "SpecLog.Server.Grains.ShardGrain", "0", ct);
            Assert.True(shard.GetProperty("GetState").GetProperty("DurableRecords").GetInt64() > 0);
            var replica = await GrainStateAsync(root, "SpecLog.Server.Grains.SequencerReplicaGrain", "1", ct);
            Assert.Equal(1, replica.GetProperty("GetState").GetProperty("Replica").GetInt32());
            Assert.Equal("Copilot", replica.GetProperty("GetState").GetProperty("Mode").GetString());
            await client.Grains.GetGrain<IConsumerCheckpointGrain>("page-test/all").AcquireAsync("the test");
            var checkpoint = await GrainStateAsync(root, "SpecLog.Server.Consumers.ConsumerCheckpointGrain", "page-test/all", ct);
            Assert.Equal(1, checkpoint.GetProperty("GetState").GetProperty("Fence").GetInt64());

            await load.CancelAsync();
            await Task.WhenAll(producer, consumer).ContinueWith(_ => { }, TaskScheduler.Default);
            log.WriteLine($"{Interlocked.Read(ref appended)} appended, {Interlocked.Read(ref delivered)} delivered during the test");
        }
        catch
        {
            log.WriteLine(string.Join(Environment.NewLine, output));
            throw;
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_dashboard_exposed_beyond_localhost_without_credentials_is_refused_at_start()
    {
        var ct = TestContext.Current.CancellationToken;
        using var temp = new TempFolder("speclog-logpage-");
        var output = new ConcurrentQueue<string>();
        await using var silo = SiloProcess.Start("silo", Path.Combine(temp.Path, "data"), 1, output,
            "--Silo:Dashboard:Enabled=true", $"--Silo:Dashboard:Port={SiloProcess.FreePort()}", "--Silo:Dashboard:Host=*");
        await Waits.UntilAsync(() => silo.HasExited, "the silo exits", StepTimeout, ct);
        Assert.Equal(2, silo.ExitCode);
        Assert.Contains(output, l => l.Contains("beyond localhost, without credentials: set Silo:Dashboard:Username and Silo:Dashboard:Password", StringComparison.Ordinal));
    }

    private static async Task<JsonElement> GrainStateAsync(string root, string grainType, string grainId, CancellationToken ct)
    {
        var (code, body) = await SiloHttp.GetAsync($"{root}/dashboard/GrainState?grainId={Uri.EscapeDataString(grainId)}&grainType={grainType}", ct, (User, Password));
        Assert.Equal(HttpStatusCode.OK, code);
        var inner = JsonSerializer.Deserialize<string>(body) ?? throw new InvalidDataException($"no state for {grainType} {grainId}: {body}");
        return JsonDocument.Parse(inner).RootElement.Clone();
    }

    /// <summary>Waits until the number shown in <paramref name="cell"/> satisfies <paramref name="done"/>; returns it.</summary>
    private static async Task<double> WaitForNumberAsync(IPage page, ILocator cell, Func<double, bool> done, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + StepTimeout;
        var text = "";
        while (DateTime.UtcNow < deadline)
        {
            ct.ThrowIfCancellationRequested();
            text = await cell.InnerTextAsync();
            if (double.TryParse(text.Replace(",", "", StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && done(n))
            {
                return n;
            }

            await page.WaitForTimeoutAsync(250); // the page redraws every second; nothing to wait on but its next draw
        }

        throw new TimeoutException($"the page showed '{text}' for {cell} after {StepTimeout.TotalSeconds} s");
    }
}
