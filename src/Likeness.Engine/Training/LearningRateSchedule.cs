namespace Likeness.Engine.Training;

/// <summary>The learning rate along a run, shared by the LoRA trainer and the pretraining.</summary>
public static class LearningRateSchedule
{
    /// <summary>A linear warm-up over the first <paramref name="warmup"/> steps, then a cosine from the peak down to a tenth of it at <paramref name="total"/>.</summary>
    public static double WarmupCosine(double peak, int step, int total, int warmup)
    {
        if (step < warmup) return peak * (step + 1) / warmup;
        var progress = (double)(step - warmup) / Math.Max(1, total - warmup);
        return peak * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
    }
}
