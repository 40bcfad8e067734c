using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Captioning;

/// <summary>
/// Florence-2 (<c>Florence2ForConditionalGeneration</c>) in transformers' native key layout: <c>model.vision_tower</c>
/// (DaViT), <c>model.multi_modal_projector</c>, <c>model.language_model</c> (BART). The output head <c>lm_head</c> is
/// the token embedding matrix (tied in every published checkpoint), so it is not a parameter of its own.
/// </summary>
public sealed class Florence2Model : nn.Module
{
    public Florence2Params Params { get; }
    private readonly Florence2Inner model;

    public Florence2Model(Florence2Params p, Device? device = null) : base(nameof(Florence2Model))
    {
        Params = p;
        model = new Florence2Inner(p, device);
        RegisterComponents();
    }

    public BartModel Language => model.language_model;

    /// <summary>pixels [B, 3, H, W] → DaViT's last map [B, C, h, w].</summary>
    public Tensor VisionFeatures(Tensor pixels) => model.vision_tower.forward(pixels);

    /// <summary>pixels [B, 3, H, W] → image tokens [B, 1 + h·w, d_model].</summary>
    public Tensor ImageFeatures(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return model.multi_modal_projector.forward(model.vision_tower.forward(pixels)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The encoder's input: the image tokens, then the prompt's token embeddings (Florence-2 puts the picture first;
    /// transformers writes it as image_seq_length placeholder tokens that it overwrites, which comes to the same).
    /// </summary>
    public Tensor EncoderInput(Tensor imageFeatures, Tensor promptIds)
    {
        using var scope = NewDisposeScope();
        return cat([imageFeatures, model.language_model.Embed(promptIds)], 1).MoveToOuterDisposeScope();
    }

    /// <summary>Encoder states for a picture and its prompt; mask [B, image tokens + prompt] or null.</summary>
    public Tensor Encode(Tensor pixels, Tensor promptIds, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        using var features = ImageFeatures(pixels);
        return model.language_model.Encode(EncoderInput(features, promptIds), mask).MoveToOuterDisposeScope();
    }

    private sealed class Florence2Inner : nn.Module
    {
        public readonly DaVit vision_tower;
        public readonly Florence2Projector multi_modal_projector;
        public readonly BartModel language_model;

        public Florence2Inner(Florence2Params p, Device? device) : base("Florence2Inner")
        {
            vision_tower = new DaVit(p.Vision, device);
            multi_modal_projector = new Florence2Projector(p.Vision, p.Text.DModel, device);
            language_model = new BartModel(p.Text, device);
            RegisterComponents();
        }
    }
}
