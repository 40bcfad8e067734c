using Likeness.Core.Captioning;
using Likeness.Core.Ports;

namespace Likeness.Core.Tests;

/// <summary>What a vision model answers is judged before it becomes a training caption.</summary>
public sealed class CaptionAnswerTests
{
    private static string? Accept(string? answer) => CaptionAnswer.Accept(answer, CaptionPrompt.Instructions, out _);

    [Theory]
    [InlineData("A close-up of a mug on a desk, soft light.", "A close-up of a mug on a desk, soft light.")]
    [InlineData("  \"A close-up of a mug on a desk.\"  ", "A close-up of a mug on a desk.")]
    [InlineData("Caption: A woman in a red coat stands on a bridge.", "A woman in a red coat stands on a bridge.")]
    [InlineData("A woman in a red coat\nstands on a bridge at dusk.", "A woman in a red coat stands on a bridge at dusk.")]
    public void A_plain_caption_is_used_trimmed_and_on_one_line(string answer, string expected) => Assert.Equal(expected, Accept(answer));

    [Theory]
    [InlineData(null, "the answer was empty")]
    [InlineData("   ", "the answer was empty")]
    [InlineData("\"\"", "the answer was empty")]
    [InlineData("I'm sorry, but I can't help with identifying people.", "the model refused")]
    [InlineData("I can't describe this image.", "the model refused")]
    [InlineData("As an AI, I cannot see images.", "the model refused")]
    [InlineData("A mug.\n\nIt sits on a desk.", "the answer has several paragraphs")]
    [InlineData("Sure. Describe what this photo shows: the framing and camera angle, the subject's pose and expression.", "the answer repeats the prompt")]
    public void An_unusable_answer_is_refused_with_its_reason(string? answer, string reason)
    {
        Assert.Null(CaptionAnswer.Accept(answer, CaptionPrompt.Instructions, out var why));
        Assert.Equal(reason, why);
    }

    [Fact]
    public void An_answer_longer_than_a_caption_is_refused()
    {
        Assert.Null(CaptionAnswer.Accept(string.Join(' ', Enumerable.Repeat("a mug on a desk,", 50)), CaptionPrompt.Instructions, out var why));
        Assert.Equal($"the answer is longer than {CaptionAnswer.MaxLength} characters", why);
    }

    [Fact]
    public void The_context_gives_the_subject_fields_that_were_set()
    {
        Assert.Equal("Context from the uploader: a female person, East Asian ethnicity, age 34.",
            CaptionPrompt.Context(new SubjectDescription("person", "female", "East Asian", "34")));
        Assert.Equal("Context from the uploader: a person.", CaptionPrompt.Context(new SubjectDescription("person", null, null, null)));
        Assert.Equal("Context from the uploader: the photo's main subject is an object.", CaptionPrompt.Context(new SubjectDescription("object", null, null, null)));
    }
}
