using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Captioning;

/// <summary>
/// A PyTorch <c>torch.save</c> file (<c>pytorch_model.bin</c>) read without Python: the zip format that torch has
/// written since 1.6 — <c>PREFIX/data.pkl</c>, a pickle of the state dict whose tensors refer to storages by key, and
/// <c>PREFIX/data/KEY</c>, each storage's raw little-endian bytes. The pickle is read by <see cref="StateDictPickle"/>,
/// which knows only what state dicts are made of and runs no code. Tensors are read one at a time, as views
/// (offset, size, stride) of their storage, so tied weights sharing a storage come out right.
/// </summary>
public sealed class TorchBinFile : ITensorSource
{
    private readonly ZipArchive _zip;
    private readonly string _prefix;
    private readonly Dictionary<string, StateDictPickle.TensorRef> _tensors;

    public string Path { get; }

    public TorchBinFile(string path)
    {
        Path = path;
        _zip = ZipFile.OpenRead(path);
        try
        {
            var pickle = _zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                ?? throw new InvalidDataException($"{path} is not a torch zip checkpoint (no PREFIX/data.pkl); files from torch before 1.6 are not read.");
            _prefix = pickle.FullName[..^"data.pkl".Length];
            var byteOrder = _zip.GetEntry(_prefix + "byteorder");
            if (byteOrder is not null)
            {
                using var reader = new StreamReader(byteOrder.Open());
                if (reader.ReadToEnd().Trim() != "little") throw new InvalidDataException($"{path} holds big-endian storages.");
            }
            using var stream = pickle.Open();
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var root = StateDictPickle.Load(buffer.ToArray());
            if (root is not Dictionary<object, object?> dict) throw new InvalidDataException($"{path} does not hold a state dict.");
            // Some trainers save {"state_dict": {…}} or {"model": {…}}.
            if (dict.Values.All(v => v is not StateDictPickle.TensorRef) && dict.Values.OfType<Dictionary<object, object?>>().Count() == 1)
                dict = dict.Values.OfType<Dictionary<object, object?>>().Single();
            _tensors = dict.Where(kv => kv.Value is StateDictPickle.TensorRef)
                .ToDictionary(kv => (string)kv.Key, kv => (StateDictPickle.TensorRef)kv.Value!, StringComparer.Ordinal);
        }
        catch
        {
            _zip.Dispose();
            throw;
        }
    }

    public IReadOnlyCollection<string> Keys => _tensors.Keys;

    public long[] Shape(string key) => _tensors[key].Size;

    public ScalarType DtypeOf(string key) => _tensors[key].Storage.Dtype;

    public Tensor Read(string key, ScalarType dtype)
    {
        if (!_tensors.TryGetValue(key, out var t)) throw new KeyNotFoundException($"{Path} has no tensor '{key}'.");
        var entry = _zip.GetEntry($"{_prefix}data/{t.Storage.Key}") ?? throw new InvalidDataException($"{Path} lacks storage {t.Storage.Key} of '{key}'.");
        using var storage = empty(t.Storage.Elements, t.Storage.Dtype);
        var bytes = storage.bytes;
        if (entry.Length != bytes.Length) throw new InvalidDataException($"{Path}: storage {t.Storage.Key} has {entry.Length} bytes, {bytes.Length} expected.");
        using (var stream = entry.Open())
        {
            var buffer = new byte[Math.Min(bytes.Length, 1 << 24)];
            for (var done = 0; done < bytes.Length;)
            {
                var read = stream.Read(buffer, 0, Math.Min(buffer.Length, bytes.Length - done));
                if (read == 0) throw new EndOfStreamException($"{Path}: storage {t.Storage.Key} is truncated.");
                buffer.AsSpan(0, read).CopyTo(bytes.Slice(done, read));
                done += read;
            }
        }
        using var view = storage.as_strided(t.Size, t.Stride, t.Offset);
        return view.to_type(dtype, copy: true).contiguous();
    }

    public void Dispose() => _zip.Dispose();
}

/// <summary>
/// A pickle reader for what <c>torch.save(state_dict)</c> writes (protocols 2–5): dicts and OrderedDicts, lists,
/// tuples, strings, numbers, booleans, None, and tensors as <c>torch._utils._rebuild_tensor_v2</c> (or
/// <c>_rebuild_parameter</c>) over persistent-id storages (<c>('storage', torch.FloatStorage, key, location, numel)</c>).
/// Any other global is refused, so a crafted file cannot make it do anything else.
/// </summary>
public static class StateDictPickle
{
    public sealed record Global(string Module, string Name)
    {
        public string FullName => $"{Module}.{Name}";
    }

    public sealed record StorageRef(string Key, ScalarType Dtype, long Elements);

    public sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

    private sealed class Mark;

    private static readonly Dictionary<string, ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = ScalarType.Float32, ["HalfStorage"] = ScalarType.Float16, ["BFloat16Storage"] = ScalarType.BFloat16,
        ["DoubleStorage"] = ScalarType.Float64, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    public static object? Load(byte[] data)
    {
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        var pos = 0;
        byte U8() => data[pos++];
        ReadOnlySpan<byte> Take(long n) { var s = data.AsSpan(pos, checked((int)n)); pos += (int)n; return s; }
        int I32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        object? Pop() { var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v; }
        List<object?> PopToMark()
        {
            var mark = stack.FindLastIndex(o => o is Mark);
            if (mark < 0) throw new InvalidDataException("Pickle: no MARK.");
            var items = stack.GetRange(mark + 1, stack.Count - mark - 1);
            stack.RemoveRange(mark, stack.Count - mark);
            return items;
        }
        string Line()
        {
            var end = Array.IndexOf(data, (byte)'\n', pos);
            var s = Encoding.ASCII.GetString(data, pos, end - pos);
            pos = end + 1;
            return s;
        }

        while (true)
        {
            var op = U8();
            switch (op)
            {
                case 0x80: U8(); break;                                        // PROTO
                case 0x95: Take(8); break;                                     // FRAME
                case (byte)'.': return Pop();                                  // STOP
                case (byte)'(': stack.Add(new Mark()); break;                  // MARK
                case (byte)'}': stack.Add(new Dictionary<object, object?>()); break;
                case (byte)']': stack.Add(new List<object?>()); break;
                case (byte)')': stack.Add(Array.Empty<object?>()); break;
                case (byte)'t': stack.Add(PopToMark().ToArray()); break;       // TUPLE
                case 0x85: stack.Add(new[] { Pop() }); break;                  // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                case (byte)'X': stack.Add(Encoding.UTF8.GetString(Take((uint)I32()))); break;          // BINUNICODE
                case 0x8c: stack.Add(Encoding.UTF8.GetString(Take(U8()))); break;                     // SHORT_BINUNICODE
                case 0x8d: stack.Add(Encoding.UTF8.GetString(Take(BinaryPrimitives.ReadInt64LittleEndian(Take(8))))); break;
                case (byte)'T': stack.Add(Encoding.Latin1.GetString(Take(I32()))); break;             // BINSTRING
                case (byte)'U': stack.Add(Encoding.Latin1.GetString(Take(U8()))); break;              // SHORT_BINSTRING
                case (byte)'B': stack.Add(Take((uint)I32()).ToArray()); break;                        // BINBYTES
                case (byte)'C': stack.Add(Take(U8()).ToArray()); break;                               // SHORT_BINBYTES
                case (byte)'J': stack.Add((long)I32()); break;                                        // BININT
                case (byte)'K': stack.Add((long)U8()); break;                                         // BININT1
                case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case 0x8a: stack.Add((long)new BigInteger(Take(U8()), isUnsigned: false, isBigEndian: false)); break;   // LONG1
                case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;     // BINFLOAT
                case (byte)'N': stack.Add(null); break;
                case 0x88: stack.Add(true); break;
                case 0x89: stack.Add(false); break;
                case (byte)'q': memo[U8()] = stack[^1]; break;                                        // BINPUT
                case (byte)'r': memo[(uint)I32()] = stack[^1]; break;                                 // LONG_BINPUT
                case 0x94: memo[memo.Count] = stack[^1]; break;                                       // MEMOIZE
                case (byte)'h': stack.Add(memo[U8()]); break;                                         // BINGET
                case (byte)'j': stack.Add(memo[(uint)I32()]); break;                                  // LONG_BINGET
                case (byte)'c': { var module = Line(); stack.Add(new Global(module, Line())); break; }  // GLOBAL
                case 0x93: { var name = (string)Pop()!; stack.Add(new Global((string)Pop()!, name)); break; }   // STACK_GLOBAL
                case (byte)'Q': stack.Add(Storage(Pop())); break;                                     // BINPERSID
                case (byte)'R': { var args = (object?[])Pop()!; stack.Add(Call(Pop(), args)); break; }  // REDUCE
                case 0x81: { var args = (object?[])Pop()!; stack.Add(Call(Pop(), args)); break; }      // NEWOBJ
                case (byte)'b': Pop(); break;                                  // BUILD: state (an OrderedDict's _metadata) is not needed
                case (byte)'s': { var v = Pop(); var k = Pop(); Dict(stack[^1])[k!] = v; break; }     // SETITEM
                case (byte)'u':                                                // SETITEMS
                {
                    var items = PopToMark();
                    var dict = Dict(stack[^1]);
                    for (var i = 0; i + 1 < items.Count; i += 2) dict[items[i]!] = items[i + 1];
                    break;
                }
                case (byte)'a': { var v = Pop(); ((List<object?>)stack[^1]!).Add(v); break; }        // APPEND
                case (byte)'e': { var items = PopToMark(); ((List<object?>)stack[^1]!).AddRange(items); break; }
                default: throw new InvalidDataException($"Pickle opcode 0x{op:x2} at {pos - 1} is not one a state dict uses.");
            }
        }
    }

    private static Dictionary<object, object?> Dict(object? o) => o as Dictionary<object, object?> ?? throw new InvalidDataException("Pickle: SETITEM on something other than a dict.");

    private static StorageRef Storage(object? pid)
    {
        if (pid is not object?[] { Length: 5 } t || t[0] as string != "storage" || t[1] is not Global { Module: "torch" } type)
            throw new InvalidDataException("Pickle: a persistent id other than a torch storage.");
        if (!StorageTypes.TryGetValue(type.Name, out var dtype)) throw new InvalidDataException($"Pickle: storage type torch.{type.Name} is not supported.");
        return new StorageRef((string)t[2]!, dtype, Convert.ToInt64(t[4]));
    }

    private static object? Call(object? callable, object?[] args)
    {
        var global = callable as Global ?? throw new InvalidDataException("Pickle: a call of something other than a global.");
        long[] Longs(object? tuple) => ((object?[])tuple!).Select(Convert.ToInt64).ToArray();
        switch (global.FullName)
        {
            case "collections.OrderedDict":
            case "builtins.dict":
                return new Dictionary<object, object?>();
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
                return new TensorRef((StorageRef)args[0]!, Convert.ToInt64(args[1]), Longs(args[2]), Longs(args[3]));
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                return args[0];
            default:
                throw new InvalidDataException($"Pickle: global {global.FullName} is not part of a state dict; refused.");
        }
    }
}
