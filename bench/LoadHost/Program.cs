// `likeness serve` for bench/load.sh: the same host (LikenessHost.BuildApp: Kestrel, middleware, auth, endpoints,
// workers), plus GET /bench/bare, which answers a LoRA-shaped JSON object from memory with no key, no database and
// no work, through the same pipeline, and GET /bench/bare-list, a page of ten such objects (the list's shape). The ratio of the real endpoints to it, measured in the same run, is the figure.
// Usage: dotnet loadhost.dll --data DIR --urls URL [--role api|all] (any flag of DESIGN.md's configuration table)
using System.Text.Json.Nodes;
using Likeness.Api;
using Likeness.Hosting;

var flags = new Dictionary<Setting, string?>();
for (var i = 0; i + 1 < args.Length; i += 2)
{
    var setting = Setting.All.FirstOrDefault(s => s.Flag == args[i])
        ?? throw new ArgumentException($"Unknown flag {args[i]}; the flags are {string.Join(", ", Setting.All.Select(s => s.Flag))}.");
    flags[setting] = args[i + 1];
}
await using var app = LikenessHost.BuildApp(Setting.Overrides(flags));
var created = new DateTime(2026, 11, 27, 9, 0, 0, DateTimeKind.Utc);
LoraResponse Bare(int i) => new($"lora_00000000000000000000bare{i:D2}", "load", "object", null, null, null, "PENDING", 15, 1000, 32,
    false, false, null, null, null, new JsonObject(), created, null, null, null, null);
app.MapGet("/bench/bare", () => TypedResults.Ok(Bare(0)));
// The list's counterpart: a page of ten LoRA-shaped objects, the JSON GET /v2/loras answers for the bench's ten LoRAs.
app.MapGet("/bench/bare-list", () => TypedResults.Ok(new Page<LoraResponse>(Enumerable.Range(0, 10).Select(Bare).ToList(), null)));
await app.RunAsync();
