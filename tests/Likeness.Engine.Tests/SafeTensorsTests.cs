using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

public sealed class SafeTensorsTests
{
    [Fact]
    public void Round_trips_f32_f16_bf16_with_metadata_and_an_aligned_header()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "t.safetensors");
        using var a = randn(3, 5);
        using var b = randn(7).to_type(ScalarType.Float16);
        using var c = randn(2, 2, 2).to_type(ScalarType.BFloat16);
        SafeTensorsFile.Save(path, new Dictionary<string, Tensor> { ["z.a"] = a, ["b"] = b, ["c"] = c },
            new Dictionary<string, string> { ["trigger_word"] = "ZOKRA", ["rank"] = "8" });

        var bytes = File.ReadAllBytes(path);
        var headerLength = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, (8 + headerLength) % 8);
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.StartsWith("{\"__metadata__\"", header);
        Assert.True(header.IndexOf("\"b\"", StringComparison.Ordinal) < header.IndexOf("\"z.a\"", StringComparison.Ordinal)); // sorted keys

        using var reader = SafeTensorsFile.Open(path);
        Assert.Equal("ZOKRA", reader.Metadata["trigger_word"]);
        Assert.Equal("F32", reader.Info("z.a").Dtype);
        Assert.Equal([3L, 5], reader.Info("z.a").Shape);
        Assert.Equal("F16", reader.Info("b").Dtype);
        Assert.Equal("BF16", reader.Info("c").Dtype);
        using var ra = reader.Read("z.a");
        using var rb = reader.Read("b");
        using var rc = reader.Read("c", ScalarType.Float32);
        Assert.True(ra.equal(a).all().item<bool>());
        Assert.True(rb.equal(b).all().item<bool>());
        using var cf = c.to_type(ScalarType.Float32);
        Assert.True(rc.equal(cf).all().item<bool>());
    }

    [Fact]
    public void Refuses_a_file_whose_offsets_point_outside_it()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "bad.safetensors");
        var header = System.Text.Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header, 1, 2, 3, 4]);
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path));
        Assert.Contains("outside", error.Message);
    }
}
