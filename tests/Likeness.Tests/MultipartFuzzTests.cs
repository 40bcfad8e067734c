using System.Diagnostics;
using System.Text;
using Likeness.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Likeness.Tests;

/// <summary>
/// Issue #11 item 6: a deterministic, seeded mutation fuzz of POST /v2/loras over HTTP against the real host (API role,
/// so nothing trains). The seed is a valid 15-photo form; mutations are truncation, bit flips, random runs, spliced
/// spans, broken or swapped boundaries, CRLFs removed, part headers blown up or garbled, and a mutated photo inside
/// an intact form. Every answer must be a 2xx or a problem+json 4xx — no 5xx, no hang — and afterwards the staging
/// folder is empty and the LoRAs and credits are exactly those of the accepted requests.
/// </summary>
public sealed class MultipartFuzzTests(ITestOutputHelper output)
{
    private const int Seed = 11_06;
    private const int MaxCases = 600;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(25);

    [Fact]
    public async Task Mutated_uploads_get_a_4xx_problem_or_are_accepted_never_a_5xx_and_store_nothing_when_refused()
    {
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?> { ["Likeness:Role"] = "api" });
        using var client = server.CreateClient(server.ApiKey);
        client.Timeout = TimeSpan.FromSeconds(30);
        var credits = await server.CreditsAsync();
        var form = LoraForms.Create(TestImages.Pngs(15, seed: 900));
        var boundary = form.Headers.ContentType!.Parameters.Single(p => p.Name == "boundary").Value!.Trim('"');
        var seed = await form.ReadAsByteArrayAsync();

        var random = new Random(Seed);
        var clock = Stopwatch.StartNew();
        var statuses = new SortedDictionary<int, int>();
        var accepted = 0;
        var cases = 0;
        for (; cases < MaxCases && clock.Elapsed < Budget; cases++)
        {
            var (mutation, body, contentBoundary) = Mutate(seed, boundary, random);
            using var content = new ByteArrayContent(body);
            // Unvalidated: some mutations declare boundaries that HttpClient's parser itself would refuse.
            Assert.True(content.Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary=\"{contentBoundary}\""));
            using var response = await client.PostAsync("/v2/loras", content);
            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync();
            var label = $"case {cases} ({mutation}, seed {Seed})";
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            Assert.True(status < 500, $"{label}: {status} {text}");
            if (status == 202) { accepted++; continue; }
            Assert.True(status is >= 400 and < 500, $"{label}: {status}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("\"code\":", text);
        }
        output.WriteLine($"{cases} requests in {clock.Elapsed.TotalSeconds:F1} s: {string.Join(", ", statuses.Select(kv => $"{kv.Key}×{kv.Value}"))}");
        Assert.True(cases >= 50, $"only {cases} requests ran");

        Assert.Empty(Directory.GetDirectories(Path.Combine(server.DataFolder, "staging")));
        var loras = (await server.GetJsonAsync("/v2/loras?limit=100&includeArchived=true", client)).GetProperty("items").GetArrayLength();
        Assert.Equal(accepted, loras);
        Assert.Equal(credits - 2 * accepted, await server.CreditsAsync(client));
    }

    private static (string Mutation, byte[] Body, string Boundary) Mutate(byte[] seed, string boundary, Random random)
    {
        var b = (byte[])seed.Clone();
        var delimiter = Encoding.ASCII.GetBytes("--" + boundary);
        switch (random.Next(10))
        {
            case 0:
                var at = random.Next(0, b.Length);
                return ($"truncated at {at}", b[..at], boundary);
            case 1:
                var flips = random.Next(1, 17);
                for (var i = 0; i < flips; i++) b[random.Next(b.Length)] ^= (byte)(1 << random.Next(8));
                return ($"{flips} bit flips", b, boundary);
            case 2:
                var start = random.Next(b.Length);
                var run = Math.Min(b.Length - start, random.Next(1, 256));
                random.NextBytes(b.AsSpan(start, run));
                return ($"{run} random bytes at {start}", b, boundary);
            case 3:
                var from = random.Next(b.Length);
                var span = Math.Min(b.Length - from, random.Next(1, 20_000));
                var to = random.Next(b.Length);
                return ($"{span} bytes from {from} spliced in at {to}", [.. b[..to], .. b.AsSpan(from, span), .. b[to..]], boundary);
            case 4:
                // One delimiter damaged: a part runs into the next.
                var delimiters = Occurrences(b, delimiter);
                var hit = delimiters[random.Next(delimiters.Count)];
                b[hit + 2 + random.Next(boundary.Length)] ^= 0x20;
                return ($"delimiter at {hit} damaged", b, boundary);
            case 5:
                string[] boundaries = ["", "x", new string('b', 300), boundary[..^1], boundary + "z", "\"", "a b"];
                var other = boundaries[random.Next(boundaries.Length)];
                return ($"declared boundary '{(other.Length > 20 ? other[..20] + "…" : other)}'", b, other);
            case 6:
                var crlfs = Occurrences(b, "\r\n"u8.ToArray());
                var drop = crlfs[random.Next(crlfs.Count)];
                return ($"CRLF at {drop} removed", [.. b[..drop], .. b[(drop + 2)..]], boundary);
            case 7:
                // A part header blown up past the reader's 16 KiB header limit, or garbled.
                var dispositions = Occurrences(b, "Content-Disposition"u8.ToArray());
                var where = dispositions[random.Next(dispositions.Count)];
                byte[] inserted = random.Next(2) == 0
                    ? Encoding.ASCII.GetBytes("X-Padding: " + new string('p', 20_000) + "\r\n")
                    : Encoding.ASCII.GetBytes("Content-Disposition: attachment; name=\"images\"; filename*=UTF-8''%FF%FE\r\n");
                return ($"{inserted.Length}-byte part header inserted at {where}", [.. b[..where], .. inserted, .. b[where..]], boundary);
            case 8:
                // The form stays intact, one photo inside it is damaged (its bytes between two delimiters).
                var parts = Occurrences(b, delimiter);
                var p = 5 + random.Next(parts.Count - 6);
                var (first, last) = (parts[p] + delimiter.Length + 120, parts[p + 1] - 2);
                if (last > first) for (var i = 0; i < 8; i++) b[random.Next(first, last)] = (byte)random.Next(256);
                return ($"photo in part {p} damaged", b, boundary);
            default:
                var tail = Occurrences(b, delimiter)[^1];
                return ($"closing delimiter removed at {tail}", b[..tail], boundary);
        }
    }

    private static List<int> Occurrences(byte[] haystack, byte[] needle)
    {
        var found = new List<int>();
        for (var i = haystack.AsSpan().IndexOf(needle); i >= 0;)
        {
            found.Add(i);
            var next = haystack.AsSpan(i + 1).IndexOf(needle);
            i = next < 0 ? -1 : i + 1 + next;
        }
        return found;
    }
}
