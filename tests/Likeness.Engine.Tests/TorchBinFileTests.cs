using Likeness.Engine.Captioning;
using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Tests.Florence2ParityTests;

namespace Likeness.Engine.Tests;

/// <summary>
/// torch.save files read without Python. Data/florence2-tiny-original was written by PyTorch 1.13 (make_original_bin.py):
/// the tiny Florence-2 in Microsoft's original key layout with its original-style config.json, and dtypes.bin.
/// </summary>
public sealed class TorchBinFileTests
{
    private static readonly string Original = Path.Combine(AppContext.BaseDirectory, "Data", "florence2-tiny-original");

    [Fact]
    public void Reads_every_storage_type_and_view_a_state_dict_holds()
    {
        using var file = new TorchBinFile(Path.Combine(Original, "dtypes.bin"));
        Assert.Equal(["bf16", "bool", "f16", "f32", "f32_rows_1_to_3", "f32_transposed", "f64", "i64", "scalar"], file.Keys.Order(StringComparer.Ordinal));
        var expected = Enumerable.Range(0, 24).Select(i => i / 8f).ToArray();
        float[] Floats(string key) { using var t = file.Read(key, ScalarType.Float32); return t.data<float>().ToArray(); }

        Assert.Equal([4L, 6], file.Shape("f32"));
        Assert.Equal(expected, Floats("f32"));
        Assert.Equal(expected[6..18], Floats("f32_rows_1_to_3"));
        Assert.Equal([6L, 4], file.Shape("f32_transposed"));
        Assert.Equal(Enumerable.Range(0, 24).Select(i => expected[(i % 4) * 6 + i / 4]).ToArray(), Floats("f32_transposed"));
        Assert.Equal(ScalarType.Float16, file.DtypeOf("f16"));
        Assert.Equal(expected.Select(v => v - 1).ToArray(), Floats("f16"));
        Assert.Equal(ScalarType.BFloat16, file.DtypeOf("bf16"));
        Assert.Equal(expected.Select(v => v * 3).ToArray(), Floats("bf16"));
        using (var f64 = file.Read("f64", ScalarType.Float64))
            Assert.Equal(Enumerable.Range(0, 24).Select(i => i / 8.0 / 3).ToArray(), f64.data<double>().ToArray());
        using (var i64 = file.Read("i64", ScalarType.Int64)) Assert.Equal([-3L, 5, 7, 1L << 40], i64.data<long>().ToArray());
        using (var b = file.Read("bool", ScalarType.Bool)) Assert.Equal([true, false, true], b.data<bool>().ToArray());
        Assert.Empty(file.Shape("scalar"));
        Assert.Equal([2.5f], Floats("scalar"));
    }

    [Fact]
    public void The_original_layout_checkpoint_loads_into_the_same_network()
    {
        var config = Florence2Params.FromFile(Path.Combine(Original, "config.json"));
        Assert.Equal(Florence2Params.FromFile(Path.Combine(Folder, "config.json")).Vision, config.Vision, new VisionComparer());
        using var fromBin = new Florence2Model(config);
        using (var bin = new TorchBinFile(Path.Combine(Original, "pytorch_model.bin")))
        {
            Assert.True(Florence2Checkpoint.IsOriginalLayout(bin.Keys));
            Florence2Checkpoint.Load(fromBin, bin, "pytorch_model.bin");
        }
        using var fromSafeTensors = LoadTiny();
        var reference = fromSafeTensors.state_dict();
        foreach (var (key, value) in fromBin.state_dict())
            Assert.True(value.eq(reference[key]).all().item<bool>(), $"{key} differs");

        fromBin.eval();
        using var _ = no_grad();
        using var pixels = Reference("pixel_values", ScalarType.Float32);
        using var features = fromBin.ImageFeatures(pixels);
        using var expected = Reference("image_features");
        Assert.True(RelativeError(features, expected) < 1e-5);
    }

    [Fact]
    public void Refuses_globals_that_are_not_part_of_a_state_dict()
    {
        // A pickle calling os.system: GLOBAL 'os system', a string, TUPLE1, REDUCE, STOP.
        byte[] evil = [0x80, 2, (byte)'c', .. "os\nsystem\n"u8, 0x8c, 4, .. "echo"u8, 0x85, (byte)'R', (byte)'.'];
        var error = Assert.Throws<InvalidDataException>(() => StateDictPickle.Load(evil));
        Assert.Contains("os.system", error.Message);
    }

    private sealed class VisionComparer : IEqualityComparer<DaVitParams>
    {
        public bool Equals(DaVitParams? a, DaVitParams? b) => a is not null && b is not null
            && a.EmbedDim.SequenceEqual(b.EmbedDim) && a.Depths.SequenceEqual(b.Depths) && a.NumHeads.SequenceEqual(b.NumHeads)
            && a.NumGroups.SequenceEqual(b.NumGroups) && a.PatchPrenorm.SequenceEqual(b.PatchPrenorm) && a.WindowSize == b.WindowSize
            && a.ProjectionDim == b.ProjectionDim && a.MaxPositionEmbeddings == b.MaxPositionEmbeddings && a.MaxTemporalEmbeddings == b.MaxTemporalEmbeddings;

        public int GetHashCode(DaVitParams p) => p.WindowSize;
    }
}
