using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Likeness.Tests.Telemetry;

/// <summary>
/// The OpenTelemetry in-memory exporters added to a server's own providers (pass <see cref="AddTo"/> as
/// <c>services:</c>). The trace list may also hold spans of other servers running in the test process (an
/// ActivitySource is process-wide), so assertions go by trace id; the metrics are the server's own.
/// </summary>
public sealed class TelemetryCapture
{
    private readonly SynchronizedList<Activity> _spans = new();
    private readonly SynchronizedList<MetricSnapshot> _metrics = new();

    public void AddTo(IServiceCollection services)
    {
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(_spans));
        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddInMemoryExporter(_metrics));
    }

    public IReadOnlyList<Activity> Spans => _spans.Snapshot();

    /// <summary>Collects the server's metrics now and returns the latest snapshot of each (cumulative totals).</summary>
    public Dictionary<string, MetricSnapshot> CollectMetrics(IServiceProvider server)
    {
        // False where a pull exporter (Prometheus) shares the provider: it has nothing to push. The in-memory reader flushes all the same.
        server.GetRequiredService<MeterProvider>().ForceFlush(10_000);
        var latest = new Dictionary<string, MetricSnapshot>();
        foreach (var snapshot in _metrics.Snapshot()) latest[snapshot.Name] = snapshot;
        return latest;
    }

    /// <summary>An exporter's target that tolerates spans arriving from other threads while a test reads it.</summary>
    private sealed class SynchronizedList<T> : ICollection<T>
    {
        private readonly List<T> _items = [];
        public List<T> Snapshot() { lock (_items) return [.. _items]; }
        public void Add(T item) { lock (_items) _items.Add(item); }
        public void Clear() { lock (_items) _items.Clear(); }
        public bool Contains(T item) { lock (_items) return _items.Contains(item); }
        public void CopyTo(T[] array, int arrayIndex) { lock (_items) _items.CopyTo(array, arrayIndex); }
        public bool Remove(T item) { lock (_items) return _items.Remove(item); }
        public int Count { get { lock (_items) return _items.Count; } }
        public bool IsReadOnly => false;
        public IEnumerator<T> GetEnumerator() => Snapshot().GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

/// <summary>Reads one metric's points by their labels.</summary>
public static class MetricPoints
{
    public static IEnumerable<(Dictionary<string, object?> Tags, MetricPoint Point)> Of(this Dictionary<string, MetricSnapshot> metrics, string name)
    {
        if (!metrics.TryGetValue(name, out var snapshot)) yield break;
        foreach (var point in snapshot.MetricPoints)
        {
            var tags = new Dictionary<string, object?>();
            foreach (var tag in point.Tags) tags[tag.Key] = tag.Value;
            yield return (tags, point);
        }
    }

    /// <summary>A counter's total over the points whose label <paramref name="label"/> is <paramref name="value"/> (all points when null).</summary>
    public static long Sum(this Dictionary<string, MetricSnapshot> metrics, string name, string? label = null, string? value = null) =>
        metrics.Of(name).Where(p => label is null || Equals(p.Tags.GetValueOrDefault(label), value)).Sum(p => p.Point.GetSumLong());

    public static long HistogramCount(this Dictionary<string, MetricSnapshot> metrics, string name, string? label = null, string? value = null) =>
        metrics.Of(name).Where(p => label is null || Equals(p.Tags.GetValueOrDefault(label), value)).Sum(p => p.Point.GetHistogramCount());
}
