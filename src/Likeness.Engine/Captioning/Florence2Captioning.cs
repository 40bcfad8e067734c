using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Captioning;

/// <summary>
/// Where a Florence-2 model's files are in a folder laid out as its Hugging Face repository is
/// (<c>microsoft/Florence-2-base</c>, <c>-large</c>, or transformers' native <c>florence-community/…</c> conversions):
/// <c>config.json</c>; weights as <c>model.safetensors</c> (or shards with an index) or <c>pytorch_model.bin</c>; the
/// tokenizer as <c>vocab.json</c> + <c>merges.txt</c> or <c>tokenizer.json</c>; optionally <c>preprocessor_config.json</c>
/// and <c>generation_config.json</c>.
/// </summary>
public sealed record Florence2Folder(string Folder, string Config, string[] SafeTensors, string? TorchBin)
{
    public static Florence2Folder Locate(string folder)
    {
        if (!Directory.Exists(folder)) throw new InvalidOperationException($"The Florence-2 model folder {folder} does not exist.");
        string In(string name) => Path.Combine(folder, name);
        var missing = new List<string>();
        if (!File.Exists(In("config.json"))) missing.Add("config.json");
        var index = Directory.EnumerateFiles(folder, "*.safetensors.index.json").FirstOrDefault();
        // model.safetensors, else the shards an index names; other safetensors files in the folder are not weights.
        var safetensors = File.Exists(In("model.safetensors")) ? [In("model.safetensors")]
            : index is not null ? Shards(index).Select(In).ToArray() : Array.Empty<string>();
        var bin = File.Exists(In("pytorch_model.bin")) ? In("pytorch_model.bin") : null;
        if (safetensors.Length == 0 && bin is null) missing.Add("model.safetensors (or pytorch_model.bin)");
        if (safetensors.FirstOrDefault(f => !File.Exists(f)) is { } absent) missing.Add(Path.GetFileName(absent));
        if (!Florence2Tokenizer.IsIn(folder)) missing.Add("vocab.json + merges.txt (or tokenizer.json)");
        if (missing.Count > 0) throw new InvalidOperationException($"The Florence-2 model folder {folder} is incomplete: missing {string.Join(", ", missing)}.");
        return new Florence2Folder(folder, In("config.json"), safetensors, safetensors.Length == 0 ? bin : null);
    }

    private static string[] Shards(string index)
    {
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(index));
        return json.RootElement.GetProperty("weight_map").EnumerateObject().Select(e => e.Value.GetString()!).Distinct().ToArray();
    }

    public ITensorSource OpenWeights() => SafeTensors.Length > 0 ? new SafeTensorsSource(SafeTensors) : new TorchBinFile(TorchBin!);
}

/// <summary>Florence-2's task tokens and the prompts its processor turns them into.</summary>
public static class Florence2Tasks
{
    public const string Caption = "<CAPTION>";
    public const string DetailedCaption = "<DETAILED_CAPTION>";
    public const string MoreDetailedCaption = "<MORE_DETAILED_CAPTION>";

    public static string Prompt(string task) => task switch
    {
        Caption => "What does the image describe?",
        DetailedCaption => "Describe in detail what is shown in the image.",
        MoreDetailedCaption => "Describe with a paragraph what is shown in the image.",
        _ => throw new ArgumentException($"Florence-2 task {task} is not a captioning task."),
    };
}

/// <summary>
/// A loaded Florence-2 that captions photos: processor → DaViT → projector → BART encoder → beam search → text.
/// Safe to call from several threads at once (inference only; each call owns its tensors).
/// </summary>
public sealed class Florence2Captioning : IDisposable
{
    private readonly Florence2Model _model;
    private readonly Device _device;

    public Florence2Params Params => _model.Params;
    public Florence2Processor Processor { get; }
    public Florence2Tokenizer Tokenizer { get; }
    public GenerationSettings Settings { get; }

    private Florence2Captioning(Florence2Model model, Florence2Processor processor, Florence2Tokenizer tokenizer, GenerationSettings settings, Device device)
        => (_model, Processor, Tokenizer, Settings, _device) = (model, processor, tokenizer, settings, device);

    /// <param name="settings">Decoding settings; null: Florence-2's captioning defaults, then the folder's generation_config.json.</param>
    public static Florence2Captioning Load(string folder, GenerationSettings? settings = null, Device? device = null)
    {
        var files = Florence2Folder.Locate(folder);
        var config = Florence2Params.FromFile(files.Config);
        device ??= CPU;
        var model = new Florence2Model(config, device);
        try
        {
            using (var weights = files.OpenWeights())
                Florence2Checkpoint.Load(model, weights, files.SafeTensors.Length > 0 ? Path.GetFileName(files.SafeTensors[0]) : "pytorch_model.bin");
            model.eval();
            var tokenizer = Florence2Tokenizer.FromFolder(folder);
            var decoding = settings ?? GenerationSettings.FromFolder(folder, GenerationSettings.Florence2Captions(config.Text.EosTokenId));
            // The decoder has positions for max_position_embeddings tokens, the start token included.
            decoding = decoding with { MaxNewTokens = Math.Min(decoding.MaxNewTokens, config.Text.MaxPositionEmbeddings - 1) };
            return new Florence2Captioning(model, Florence2Processor.FromFolder(folder), tokenizer, decoding, device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The caption of an encoded photo (jpg/png/webp) for a captioning task, special tokens dropped.</summary>
    public string Caption(byte[] encodedImage, string task = Florence2Tasks.MoreDetailedCaption)
    {
        using var pixels = Processor.FromEncoded(encodedImage);
        return Caption(pixels, task);
    }

    /// <summary>The caption of processed pixels [1, 3, H, W].</summary>
    public string Caption(Tensor pixels, string task = Florence2Tasks.MoreDetailedCaption) => Tokenizer.Decode(Generate(pixels, task).Sequences[0]);

    public Generated Generate(Tensor pixels, string task)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var prompt = tensor(Tokenizer.EncodePrompt(Florence2Tasks.Prompt(task)), device: _device).unsqueeze(0);
        var states = _model.Encode(pixels.to(_device), prompt, null);
        return Settings.NumBeams > 1
            ? Florence2Generation.BeamSearch(_model, states, null, Settings)
            : Florence2Generation.Greedy(_model, states, null, Settings);
    }

    public void Dispose() => _model.Dispose();
}
