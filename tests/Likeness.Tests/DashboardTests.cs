using System.Text.RegularExpressions;
using Likeness.Tests.Infrastructure;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Likeness.Tests;

/// <summary>The dashboard at /app in a real browser against the real service (SQLite, workers, flux-tiny).</summary>
public sealed class DashboardTests(BrowserFixture fixture) : IClassFixture<BrowserFixture>
{
    private static readonly TimeSpan Training = TimeSpan.FromMinutes(3);

    [SkippableFact]
    public async Task Trains_from_fifteen_photos_with_live_progress_and_generates_images()
    {
        Skip.If(BrowserFixture.SkipReason is not null, BrowserFixture.SkipReason);
        await using var receiver = await WebhookReceiver.StartAsync();
        var (page, errors) = await fixture.NewPageAsync();
        await page.GotoAsync("/");
        Assert.EndsWith("/app/", new Uri(page.Url).AbsolutePath);
        await BrowserFixture.ScreenshotAsync(page, "dashboard-sign-in");
        await SignInAsync(page);

        await page.GetByRole(AriaRole.Link, new() { Name = "New LoRA" }).First.ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "New LoRA" })).ToBeFocusedAsync();
        await page.Locator("#photos").SetInputFilesAsync(Photos(15));
        await Expect(page.Locator("#photo-summary")).ToContainTextAsync("15 photos");
        await Expect(page.Locator("#previews img")).ToHaveCountAsync(15);
        await page.GetByLabel("Name").FillAsync("Ada – garden portraits");
        await page.GetByLabel("Kind").SelectOptionAsync("person");
        await page.GetByLabel("Gender").SelectOptionAsync("female");
        await page.GetByLabel("Ethnicity").FillAsync("British");
        // Enough steps that the training is seen in progress (the trainer writes its progress once a second, and a
        // quiet machine runs 60 rank-8 steps in about as long), few enough to stay quick.
        await page.Locator("#f-steps").FillAsync("200");
        await page.Locator("#f-rank").FillAsync("8");
        await page.GetByLabel("Webhook URL").FillAsync(receiver.Url);
        await BrowserFixture.ScreenshotAsync(page, "dashboard-upload", fullPage: true);
        await page.GetByRole(AriaRole.Button, new() { Name = "Start training" }).ClickAsync();

        await Expect(page).ToHaveURLAsync(new Regex("#/loras/lora_[0-9a-z]{26}$"));
        var id = page.Url[(page.Url.LastIndexOf('/') + 1)..];
        var detail = page.Locator("#detail");
        await Expect(detail.GetByRole(AriaRole.Heading, new() { Name = "Ada – garden portraits" })).ToBeVisibleAsync();
        // Live progress from the event stream: the training's step and ETA in the list and the detail.
        var item = page.Locator($"#item-{id}");
        await Expect(item.Locator("progress")).ToBeVisibleAsync(new() { Timeout = (float)Training.TotalMilliseconds });
        await Expect(detail.Locator(".status-line")).ToContainTextAsync(new Regex(@"Training: step [1-9]\d* of 200, about .+ left"),
            new() { Timeout = (float)Training.TotalMilliseconds });
        await BrowserFixture.ScreenshotAsync(page, "dashboard-progress");

        await Expect(detail.Locator(".status-line .badge")).ToHaveTextAsync("READY", new() { Timeout = (float)Training.TotalMilliseconds });
        var lora = await fixture.Server.GetJsonAsync($"/v2/loras/{id}");
        await Expect(detail.Locator(".status-line")).ToContainTextAsync($"Trigger word {lora.GetProperty("triggerWord").GetString()}");
        await Expect(page.Locator("#announce")).ToContainTextAsync("READY");
        await Expect(detail.Locator("#captions summary")).ToHaveTextAsync("Captions (15)");
        // The completed webhook, as its delivery attempt is listed when the list is opened.
        for (var wait = DateTime.UtcNow.AddSeconds(30); receiver.Deliveries.IsEmpty && DateTime.UtcNow < wait;) await Task.Delay(100);
        await detail.Locator("#deliveries summary").ClickAsync();
        await Expect(detail.Locator("#deliveries tbody tr").First).ToContainTextAsync("completed");
        await Expect(detail.Locator("#deliveries tbody tr").First).ToContainTextAsync("delivered (200)");
        await detail.Locator("#deliveries summary").ClickAsync();

        await page.GetByLabel("Prompt").FillAsync("a portrait in a sunny garden");
        await page.GetByLabel("Number of images").FillAsync("2");
        await page.Locator("#g-num_inference_steps").FillAsync("4");
        await page.GetByLabel("Seed (optional)").FillAsync("7");
        await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();
        var images = page.Locator("#gallery img");
        await Expect(images).ToHaveCountAsync(2, new() { Timeout = 60_000 });
        foreach (var img in await images.AllAsync())
        {
            // Loaded and decoded, not a broken image.
            await Expect(img).ToHaveJSPropertyAsync("complete", true);
            Assert.True(await img.EvaluateAsync<int>("i => i.naturalWidth") > 0);
        }
        await Expect(page.Locator("#gallery a[download]").First).ToHaveAttributeAsync("href", new Regex("/v2/files/.*sig="));
        await Expect(page.Locator("#gallery figcaption")).ToContainTextAsync(["seed 7", "seed 8"]);
        await BrowserFixture.ScreenshotAsync(page, "dashboard-gallery", fullPage: true);

        // The ledger shows what it cost: 2 + 255 for the training, 4 for the two images.
        await page.GetByRole(AriaRole.Link, new() { Name = "Credits" }).ClickAsync();
        await Expect(page.Locator("#ledger tr").Filter(new() { HasText = "lora training" }).First).ToContainTextAsync("-255");
        await Expect(page.Locator("#ledger tr").First).ToContainTextAsync("generation");
        Assert.Empty(errors);

        // The same views in the dark and at a phone's width.
        var (dark, darkErrors) = await fixture.NewPageAsync(ColorScheme.Dark);
        await dark.GotoAsync($"/app/#/loras/{id}");
        await SignInAsync(dark);
        await Expect(dark.Locator("#detail .status-line .badge")).ToHaveTextAsync("READY");
        await BrowserFixture.ScreenshotAsync(dark, "dashboard-dark");
        var (phone, phoneErrors) = await fixture.NewPageAsync(ColorScheme.Light, width: 390, height: 844);
        await phone.GotoAsync($"/app/#/loras/{id}");
        await SignInAsync(phone);
        await Expect(phone.Locator("#detail .status-line .badge")).ToHaveTextAsync("READY");
        Assert.True(await phone.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the page should not scroll sideways at a phone's width");
        await BrowserFixture.ScreenshotAsync(phone, "dashboard-phone", fullPage: true);
        Assert.Empty(darkErrors);
        Assert.Empty(phoneErrors);
    }

    [SkippableFact]
    public async Task Shows_the_problem_for_a_wrong_key_fourteen_photos_a_duplicate_and_a_refused_field()
    {
        Skip.If(BrowserFixture.SkipReason is not null, BrowserFixture.SkipReason);
        var (page, errors) = await fixture.NewPageAsync();
        await page.GotoAsync("/app/");
        // By keyboard alone: the key field has focus, Tab reaches the button, Enter signs in.
        await Expect(page.GetByLabel("API key")).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync("lk_not-a-key");
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Sign in" })).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Enter");
        var signInProblem = page.Locator("#signin-form [role=alert]");
        await Expect(signInProblem).ToContainTextAsync("401 unauthorized");
        await Expect(signInProblem).ToContainTextAsync("A valid API key is required");
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('likeness.apiKey')"));

        await SignInAsync(page);
        await page.GotoAsync("/app/#/new");
        var problem = page.Locator("#new-form [role=alert]");
        await page.Locator("#photos").SetInputFilesAsync(Photos(14));
        await Expect(page.Locator("#photo-summary")).ToContainTextAsync("14 photos");
        await page.GetByLabel("Name").FillAsync("Fourteen");
        await page.GetByLabel("Kind").SelectOptionAsync("object");
        await page.GetByRole(AriaRole.Button, new() { Name = "Start training" }).ClickAsync();
        await Expect(problem).ToContainTextAsync("400 too_few_images");
        await Expect(problem).ToContainTextAsync("Upload at least 15 images; got 14.");

        // The same photo again is refused by name; the set stays 14.
        await page.Locator("#photos").SetInputFilesAsync(Photos(1));
        await Expect(problem).ToContainTextAsync("duplicate_image");
        await Expect(page.Locator("#previews img")).ToHaveCountAsync(14);

        // A field only the server judges: its problem, with the field's own message, as the API wrote it.
        await page.Locator("#photos").SetInputFilesAsync(Photos(1, first: 14));
        await page.Locator("#f-steps").FillAsync("1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Start training" }).ClickAsync();
        await Expect(problem).ToContainTextAsync("400 validation_failed");
        await Expect(problem).ToContainTextAsync($"steps must be an integer from {LikenessServer.TestMinSteps} to 3000.");
        await Expect(problem).ToContainTextAsync("Trace id");
        await Expect(page).ToHaveURLAsync(new Regex("#/new$"));
        Assert.Empty(errors);
    }

    [SkippableFact]
    public async Task Cancels_a_training_refunds_it_and_archives_it()
    {
        Skip.If(BrowserFixture.SkipReason is not null, BrowserFixture.SkipReason);
        var (page, errors) = await fixture.NewPageAsync();
        await page.GotoAsync("/app/");
        await SignInAsync(page);
        var before = await fixture.Server.CreditsAsync();
        await page.GotoAsync("/app/#/new");
        await page.Locator("#photos").SetInputFilesAsync(Photos(15, first: 100));
        await page.GetByLabel("Name").FillAsync("To be cancelled");
        await page.GetByLabel("Kind").SelectOptionAsync("object");
        await page.Locator("#f-steps").FillAsync("3000");
        await page.GetByRole(AriaRole.Button, new() { Name = "Start training" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("#/loras/lora_"));

        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel training" }).ClickAsync();
        var status = page.Locator("#detail .status-line");
        await Expect(status.Locator(".badge")).ToHaveTextAsync("FAILED");
        await Expect(status).ToContainTextAsync("(canceled)");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Cancel training" })).ToHaveCountAsync(0);
        Assert.Equal(before, await fixture.Server.CreditsAsync());
        await Expect(page.Locator("#credits")).ToHaveTextAsync($"{before:N0} credits");

        await page.GetByRole(AriaRole.Button, new() { Name = "Archive" }).ClickAsync();
        await Expect(status.Locator(".badge")).ToHaveTextAsync("ARCHIVED");
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Archive" })).ToHaveCountAsync(0);
        Assert.Empty(errors);
    }

    private async Task SignInAsync(IPage page)
    {
        await page.GetByLabel("API key").FillAsync(fixture.Server.ApiKey);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Button, new() { Name = "Sign out" })).ToBeVisibleAsync();
        // The key is in session storage, never in the address.
        Assert.DoesNotContain(fixture.Server.ApiKey, page.Url);
    }

    private static FilePayload[] Photos(int count, int first = 0) => Enumerable.Range(first, count)
        .Select(i => new FilePayload { Name = $"photo{i + 1:00}.png", MimeType = "image/png", Buffer = TestImages.Png(i, 160, 200) })
        .ToArray();
}
