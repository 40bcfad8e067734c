using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Loras;
using Likeness.Tests.Infrastructure;
using Names = Likeness.Core.Common.LikenessMetrics.Names;
using Labels = Likeness.Core.Common.LikenessMetrics.Labels;

namespace Likeness.Tests.Telemetry;

public sealed class RefundMetricsTests
{
    [Fact]
    public async Task Counts_what_a_cancelled_lora_refunds()
    {
        var capture = new TelemetryCapture();
        await using var server = await LikenessServer.StartAsync(services: capture.AddTo);
        var created = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 940)));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await server.Client.PostAsync($"/v2/loras/{id}/cancel", null)).StatusCode);

        var metrics = capture.CollectMetrics(server.App.Services);
        Assert.Equal(LoraLifecycle.CreateFee, metrics.Sum(Names.CreditsCharged, Labels.Reason, LedgerReasons.LoraCreate));
        Assert.Equal(LoraLifecycle.CreateFee, metrics.Sum(Names.CreditsRefunded, Labels.Subject, LikenessMetrics.Subjects.Lora));
        Assert.Equal(0, metrics.Sum(Names.CreditsCharged, Labels.Reason, LedgerReasons.LoraTraining));
    }
}
