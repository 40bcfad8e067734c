using System.Text.Json;
using Likeness.Engine.Text;

namespace Likeness.Engine.Tests;

public sealed class ClipBpeTokenizerTests
{
    private static readonly string[] Vocabulary =
    [
        "<|startoftext|>", "<|endoftext|>", "a</w>", "p", "h", "o", "t", "ph", "ot", "phot", "o</w>", "photo</w>",
        "f</w>", "z", "k", "r", ",</w>", "i", "t</w>", "'", "s</w>", "2</w>", "Ã", "©</w>",
    ];

    private static ClipBpeTokenizer Tokenizer()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(Vocabulary.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i)));
        File.WriteAllLines(Path.Combine(folder, "merges.txt"), ["#version: 0.2", "p h", "o t", "ph ot", "phot o</w>"]);
        return ClipBpeTokenizer.FromFolder(folder);
    }

    private static string[] Tokens(long[] ids) => ids.Select(i => Vocabulary[i]).ToArray();

    [Fact]
    public void Encodes_hand_checked_strings_with_start_end_and_end_padding()
    {
        var ids = Tokenizer().Encode("A  photo of ZOKRA, it's 2 é", 20);
        Assert.Equal(
        [
            "<|startoftext|>", "a</w>", "photo</w>", "o", "f</w>", "z", "o", "k", "r", "a</w>", ",</w>", "i", "t</w>", "'", "s</w>", "2</w>",
            "Ã", "©</w>", "<|endoftext|>", "<|endoftext|>",
        ], Tokens(ids));
    }

    [Fact]
    public void Truncates_to_the_length_keeping_the_end_token()
    {
        Assert.Equal(["<|startoftext|>", "a</w>", "photo</w>", "o", "<|endoftext|>"], Tokens(Tokenizer().Encode("a photo of", 5)));
    }

    [Fact]
    public void Merges_by_rank_until_no_pair_is_listed()
    {
        // photo: (p,h), (o,t), (ph,ot), (phot,o</w>) in rank order → one token. In "pot" no pair is listed: the last t carries </w>.
        Assert.Equal(["<|startoftext|>", "photo</w>", "<|endoftext|>"], Tokens(Tokenizer().Encode("photo", 3)));
        Assert.Equal(["<|startoftext|>", "p", "o", "t</w>", "<|endoftext|>"], Tokens(Tokenizer().Encode("pot", 5)));
    }
}
