using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Runtime.CompilerServices;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Training;
using TorchSharp;

namespace Likeness.Engine.Tests;

/// <summary>
/// A TorchSharp <see cref="Scalar"/> made for one call (a bare number where an op takes a Scalar, or one made inside
/// TorchSharp) is freed by its finalizer if a collection runs while libtorch still reads it: "Unknown scalar type",
/// failed asserts, or a silently different number. The engine keeps every Scalar it uses alive (the LK0001/LK0002
/// analyzer); these tests hold it to that while it trains and samples.
/// </summary>
[Collection(nameof(CollectorStorm))]
public sealed class ScalarLifetimeTests
{
    /// <summary>Deterministic: a Scalar that reaches the finalizer is one that nothing held.</summary>
    [Fact]
    public void Training_and_sampling_leave_no_Scalar_to_the_finalizer()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = SamplingAndTrainingTests.Dataset(dir, 2);
        using var engine = new FluxEngine(FluxPreset.Tiny, null);
        using var finalized = new FinalizedScalars();

        engine.Train(new LoraTrainingOptions(zip, Path.Combine(dir, "a.safetensors"), Path.Combine(dir, "work"), 2, 4, 5), null, default);
        engine.Generate(new GenerateOptions(Path.Combine(dir, "a.safetensors"), "a photo of TESTX", 16, 16, 7, Steps: 2));

        // One Scalar dropped on purpose shows that the count works on this runtime.
        Assert.Equal(1, finalized.CountAfterDropping(1));
    }

    [Fact]
    public void Training_and_sampling_under_a_collector_that_never_rests_give_what_they_give_in_calm()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = SamplingAndTrainingTests.Dataset(dir, 2);
        LoraTrainingOptions Options(string name) => new(zip, Path.Combine(dir, name + ".safetensors"), Path.Combine(dir, name), 3, 4, 5);
        GenerateOptions Image(string adapter) => new(Path.Combine(dir, adapter + ".safetensors"), "a photo of TESTX", 16, 16, 7, Steps: 2);

        using var engine = new FluxEngine(FluxPreset.Tiny, null);
        engine.Train(Options("calm"), null, default);
        var calm = engine.Generate(Image("calm"));

        using (CollectorStorm.Start())
        {
            engine.Train(Options("stormy"), null, default);
            AssertSameAdapters(Path.Combine(dir, "calm.safetensors"), Path.Combine(dir, "stormy.safetensors"));
            // Sampling is cheap at 16 × 16: many rounds in a bounded time.
            var watch = Stopwatch.StartNew();
            do Assert.Equal(calm, engine.Generate(Image("stormy")));
            while (watch.Elapsed < TimeSpan.FromSeconds(10));
        }
    }

    [Fact]
    public void Florence2_captioning_leaves_no_Scalar_to_the_finalizer_and_captions_alike_under_a_storm()
    {
        using var captioning = Captioning.Florence2Captioning.Load(Florence2ParityTests.Folder);
        var photo = Florence2CaptioningTests.Photo();
        string calm;
        using (var finalized = new FinalizedScalars())
        {
            calm = captioning.Caption(photo);
            Assert.Equal(1, finalized.CountAfterDropping(1));
        }
        using (CollectorStorm.Start())
        {
            var watch = Stopwatch.StartNew();
            do Assert.Equal(calm, captioning.Caption(photo));
            while (watch.Elapsed < TimeSpan.FromSeconds(5));
        }
    }

    private static void AssertSameAdapters(string expected, string actual)
    {
        using var a = SafeTensorsFile.Open(expected);
        using var b = SafeTensorsFile.Open(actual);
        foreach (var key in a.Keys)
        {
            using var ta = a.Read(key);
            using var tb = b.Read(key);
            Assert.Equal(ta.data<float>().ToArray(), tb.data<float>().ToArray());
        }
    }

    /// <summary>
    /// Counts the runtime's FinalizeObject events for <see cref="Scalar"/>. The finalizer thread reports in order, so
    /// once a marker object dropped after some Scalars has been reported, so have they: <see cref="Drain"/> collects
    /// and runs the finalizers until a fresh marker is reported. The count starts after a first drain (the session
    /// starts asynchronously, and earlier tests may have left Scalars to the finalizer).
    /// </summary>
    private sealed class FinalizedScalars : EventListener
    {
        private static readonly nint ScalarType = typeof(Scalar).TypeHandle.Value;
        private static readonly nint MarkerType = typeof(Marker).TypeHandle.Value;
        private int _scalars;
        private int _markers;

        public FinalizedScalars()
        {
            Drain();
            Interlocked.Exchange(ref _scalars, 0);
        }

        public int CountAfterDropping(int scalars)
        {
            Drop(scalars);
            Drain();
            return Volatile.Read(ref _scalars);
        }

        private void Drain()
        {
            var seen = Volatile.Read(ref _markers);
            var watch = Stopwatch.StartNew();
            while (Volatile.Read(ref _markers) == seen)
            {
                if (watch.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException("The runtime reported no FinalizeObject event.");
                DropMarker();
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Thread.Sleep(50);
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void Drop(int scalars)
        {
            for (var i = 0; i < scalars; i++) _ = 1.ToScalar();
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void DropMarker() => _ = new Marker();

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime") EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC
        }

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventName != "FinalizeObject" || e.Payload is not [nint type, ..]) return;
            if (type == ScalarType) Interlocked.Increment(ref _scalars);
            else if (type == MarkerType) Interlocked.Increment(ref _markers);
        }

        private sealed class Marker
        {
            ~Marker() { }
        }
    }
}

/// <summary>Threads that collect and run finalizers in a loop until disposed. Its tests run alone: it slows every other.</summary>
[CollectionDefinition(nameof(CollectorStorm), DisableParallelization = true)]
public sealed class CollectorStorm : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread[] _threads;

    private CollectorStorm(int threads)
    {
        _threads = [.. Enumerable.Range(0, threads).Select(_ => new Thread(Collect) { IsBackground = true })];
        foreach (var t in _threads) t.Start();
    }

    /// <summary>Collections of the youngest generation, where a Scalar made for one call still is: many per second.</summary>
    public static CollectorStorm Start(int threads = 2) => new(threads);

    private void Collect()
    {
        while (!_stop.IsCancellationRequested)
        {
            GC.Collect(0);
            GC.WaitForPendingFinalizers();
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var t in _threads) t.Join();
        _stop.Dispose();
    }
}
