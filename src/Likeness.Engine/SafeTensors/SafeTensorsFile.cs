using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.SafeTensors;

public sealed record TensorInfo(string Dtype, long[] Shape, long Begin, long End);

/// <summary>
/// safetensors: 8-byte little-endian header length N, N bytes of JSON (entries and an optional
/// <c>__metadata__</c> string map, space-padded to 8-byte alignment), then the raw little-endian data.
/// Reading maps the file, so a multi-gigabyte checkpoint is never read whole into memory.
/// </summary>
public sealed class SafeTensorsReader : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly long _dataStart;
    private readonly Dictionary<string, TensorInfo> _tensors;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<string> Keys => _tensors.Keys;
    public TensorInfo Info(string key) => _tensors[key];
    public bool Contains(string key) => _tensors.ContainsKey(key);

    public SafeTensorsReader(string path)
    {
        Path = path;
        var length = new FileInfo(path).Length;
        if (length < 8) throw new InvalidDataException($"{path} is too short to be a safetensors file.");
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var headerView = _file.CreateViewAccessor(0, Math.Min(length, 8 + 100_000_000L), MemoryMappedFileAccess.Read);
        var headerLength = headerView.ReadInt64(0);
        if (headerLength <= 0 || headerLength > 100_000_000 || 8 + headerLength > length)
            throw new InvalidDataException($"{path}: the header length {headerLength} does not fit the file.");
        var header = new byte[headerLength];
        headerView.ReadArray(8, header, 0, header.Length);
        _dataStart = 8 + headerLength;

        _tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        using var json = JsonDocument.Parse(header);
        foreach (var entry in json.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                foreach (var m in entry.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                continue;
            }
            var dtype = entry.Value.GetProperty("dtype").GetString()!;
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || _dataStart + offsets[1] > length)
                throw new InvalidDataException($"{path}: tensor '{entry.Name}' points outside the file.");
            var expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
            if (expected != offsets[1] - offsets[0])
                throw new InvalidDataException($"{path}: tensor '{entry.Name}' has {offsets[1] - offsets[0]} bytes, its shape needs {expected}.");
            _tensors[entry.Name] = new TensorInfo(dtype, shape, offsets[0], offsets[1]);
        }
        Metadata = metadata;
    }

    /// <summary>Reads one tensor (a copy), converted to <paramref name="convertTo"/> when given.</summary>
    public Tensor Read(string key, ScalarType? convertTo = null)
    {
        if (!_tensors.TryGetValue(key, out var info)) throw new KeyNotFoundException($"{Path} has no tensor '{key}'.");
        var type = ScalarTypeOf(info.Dtype);
        var tensor = torch.empty(info.Shape, type);
        var length = info.End - info.Begin;
        if (length > 0) CopyFromMap(_dataStart + info.Begin, length, tensor);
        if (convertTo is { } target && target != type)
        {
            var converted = tensor.to_type(target);
            tensor.Dispose();
            return converted;
        }
        return tensor;
    }

    /// <summary>
    /// Copies straight from the mapped file into the tensor's memory, through a view of just that tensor that is
    /// unmapped right after: the file's pages never pile up in the process's resident memory.
    /// </summary>
    private unsafe void CopyFromMap(long offset, long length, Tensor target)
    {
        using var view = _file.CreateViewAccessor(offset, length, MemoryMappedFileAccess.Read);
        byte* start = null;
        var handle = view.SafeMemoryMappedViewHandle;
        handle.AcquirePointer(ref start);
        try
        {
            var source = start + view.PointerOffset;
            var destination = target.bytes;
            for (long done = 0; done < length;)
            {
                var chunk = (int)Math.Min(int.MaxValue, length - done);
                new ReadOnlySpan<byte>(source + done, chunk).CopyTo(destination.Slice((int)done, chunk));
                done += chunk;
            }
        }
        finally { handle.ReleasePointer(); }
    }

    public void Dispose() => _file.Dispose();

    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" => 8,
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        "U8" or "I8" or "BOOL" => 1,
        _ => throw new InvalidDataException($"Unsupported safetensors dtype '{dtype}'."),
    };

    public static ScalarType ScalarTypeOf(string dtype) => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"Unsupported safetensors dtype '{dtype}'."),
    };

    public static string DtypeOf(ScalarType type) => type switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"safetensors has no dtype for {type}."),
    };
}

public static class SafeTensorsFile
{
    public static SafeTensorsReader Open(string path) => new(path);

    /// <summary>
    /// Writes tensors (each in its own dtype) with optional metadata; keys sorted, header padded with spaces to
    /// 8-byte alignment, data streamed tensor by tensor.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var keys = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        using var headerStream = new MemoryStream();
        using (var w = new Utf8JsonWriter(headerStream))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var key in keys)
            {
                var t = tensors[key];
                var size = t.numel() * t.element_size();
                w.WriteStartObject(key);
                w.WriteString("dtype", SafeTensorsReader.DtypeOf(t.dtype));
                w.WriteStartArray("shape");
                foreach (var d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + size);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += size;
            }
            w.WriteEndObject();
        }
        var header = headerStream.ToArray().ToList();
        while ((8 + header.Count) % 8 != 0) header.Add((byte)' ');

        var tmp = path + ".part";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            file.Write(BitConverter.GetBytes((long)header.Count));
            file.Write(header.ToArray());
            foreach (var key in keys)
            {
                using var cpu = tensors[key].detach().cpu().contiguous();
                file.Write(cpu.bytes);
            }
        }
        File.Move(tmp, path, overwrite: true);
    }
}
