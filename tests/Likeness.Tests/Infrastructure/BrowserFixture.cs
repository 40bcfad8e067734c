using Microsoft.Playwright;

namespace Likeness.Tests.Infrastructure;

/// <summary>
/// A headless Chromium driven by Playwright and a server for it. The browser is the system's (Debian's <c>chromium</c>
/// package, or the one LIKENESS_TEST_CHROMIUM names), never one Playwright downloads; without it the browser tests are
/// skipped, with that reason shown (.ci/run installs it).
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string Variable = "LIKENESS_TEST_CHROMIUM";
    private IPlaywright? _playwright;

    public static string ChromiumPath => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public static string? SkipReason => File.Exists(ChromiumPath)
        ? null
        : $"The dashboard's browser tests need Chromium at {ChromiumPath}: apt-get install -y chromium, or set {Variable} (bash .ci/run installs it).";

    public IBrowser Browser { get; private set; } = null!;
    public LikenessServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (SkipReason is not null) return;
        Server = await LikenessServer.StartAsync();
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumPath, Headless = true });
    }

    /// <summary>A fresh tab (its own session storage) on the server, with the page's uncaught errors collected.</summary>
    public async Task<(IPage Page, List<string> Errors)> NewPageAsync(ColorScheme scheme = ColorScheme.Light, int width = 1280, int height = 860)
    {
        var context = await Browser.NewContextAsync(new()
        {
            BaseURL = Server.BaseAddress.ToString(), ColorScheme = scheme, ViewportSize = new() { Width = width, Height = height },
        });
        context.SetDefaultTimeout(15_000);
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        // Confirmations (cancel, archive) are answered yes.
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        return (page, errors);
    }

    /// <summary>Saves a screenshot where LIKENESS_SCREENSHOTS names a folder (the README's come from there); otherwise nothing.</summary>
    public static async Task ScreenshotAsync(IPage page, string name, bool fullPage = false)
    {
        if (Environment.GetEnvironmentVariable("LIKENESS_SCREENSHOTS") is not { Length: > 0 } folder) return;
        Directory.CreateDirectory(folder);
        await page.ScreenshotAsync(new() { Path = Path.Combine(folder, name + ".png"), FullPage = fullPage, Animations = ScreenshotAnimations.Disabled });
    }

    public async Task DisposeAsync()
    {
        if (SkipReason is not null) return;
        await Browser.DisposeAsync();
        _playwright?.Dispose();
        await Server.DisposeAsync();
    }
}
