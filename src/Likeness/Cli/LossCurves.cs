using System.Globalization;
using SkiaSharp;

namespace Likeness.Cli;

/// <summary>
/// The pretraining's loss curves as one PNG: the autoencoder's and the transformer's, each logged step faint and a
/// moving average on top, read from the phases' <c>loss.csv</c> logs in the work folder — and, where the work folder
/// has one, the GPU continuation's (<c>transformer-gpu/loss.csv</c>, tools/gpu-pretrain: a row every 25 steps of
/// 1,024).
/// </summary>
internal static class LossCurves
{
    public static void Write(string workFolder, string path)
    {
        var panels = new List<byte[]>();
        (string Phase, string Title, int Window, string Mean)[] phases =
        [
            ("autoencoder", "autoencoder: L1 + L2 + KL", 50, "50-step mean"),
            ("transformer", "transformer + text encoders: flow-matching MSE", 50, "50-step mean"),
            ("transformer-gpu", "the same on a GPU, batch 1,024 (tools/gpu-pretrain)", 10, "250-step mean"),
        ];
        foreach (var (phase, title, window, meanText) in phases)
        {
            var log = Path.Combine(workFolder, phase, "loss.csv");
            if (!File.Exists(log)) continue;
            var rows = File.ReadLines(log).Select(l => l.Split(','))
                .Select(p => (Step: double.Parse(p[0], CultureInfo.InvariantCulture), Loss: double.Parse(p[1], CultureInfo.InvariantCulture))).ToArray();
            var steps = rows.Select(r => r.Step).ToArray();
            var losses = rows.Select(r => r.Loss).ToArray();
            var smooth = losses.Select((_, i) => losses[Math.Max(0, i - window + 1)..(i + 1)].Average()).ToArray();
            var plot = new ScottPlot.Plot();
            var raw = plot.Add.ScatterLine(steps, losses);
            raw.Color = ScottPlot.Colors.SteelBlue.WithAlpha(0.25);
            var mean = plot.Add.ScatterLine(steps, smooth);
            mean.Color = ScottPlot.Colors.Navy;
            mean.LineWidth = 2;
            mean.LegendText = meanText;
            plot.Title(title);
            plot.XLabel("step");
            plot.YLabel("loss");
            plot.Axes.SetLimitsY(0, losses.Skip(Math.Min(20, losses.Length - 1)).Max() * 1.05);
            panels.Add(plot.GetImageBytes(640, 360, ScottPlot.ImageFormat.Png));
        }
        if (panels.Count == 0) return;
        using var surface = SKSurface.Create(new SKImageInfo(640 * panels.Count, 360));
        surface.Canvas.Clear(SKColors.White);
        for (var i = 0; i < panels.Count; i++)
        {
            using var panel = SKBitmap.Decode(panels[i]);
            surface.Canvas.DrawBitmap(panel, 640 * i, 0);
        }
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllBytes(path, png.ToArray());
    }
}
