using Likeness.Core.Ports;

namespace Likeness.Core.Captioning;

/// <summary>
/// What a vision model is asked, in the manner of LoRA trainers' captioning prompts: describe what is visible,
/// plainly, without naming or guessing. The subject fields are context, not something to repeat; the trigger word
/// and class phrase are added afterwards by <see cref="CaptionComposer"/>.
/// </summary>
public static class CaptionPrompt
{
    public const string Instructions =
        "You write captions for the training images of an image-generation model. Describe what this photo shows: " +
        "the framing and camera angle, the subject's pose and expression, clothing and accessories, the setting and " +
        "background, the lighting, and the photographic style. Write one or two plain sentences, at most 60 words, " +
        "in the present tense. Do not name anyone, do not guess identity, mood or intent, and do not add anything " +
        "that is not visible. Answer with the caption only, no preamble and no quotation marks.";

    /// <summary>The request's own words about the subject, so that the model does not contradict them.</summary>
    public static string Context(SubjectDescription subject)
    {
        var about = subject.Kind switch
        {
            "person" => string.Join(", ", new[]
            {
                subject.Gender is null ? "a person" : $"a {subject.Gender} person",
                subject.Ethnicity is null ? null : $"{subject.Ethnicity} ethnicity",
                subject.Age is null ? null : $"age {subject.Age}",
            }.Where(p => p is not null)),
            "style" => "the photo is an example of a visual style; describe its content and its look",
            _ => "the photo's main subject is an object",
        };
        return $"Context from the uploader: {about}.";
    }
}
