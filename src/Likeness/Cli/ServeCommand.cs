using System.CommandLine;
using Likeness.Hosting;

namespace Likeness.Cli;

internal static class ServeCommand
{
    public static Command Create()
    {
        var serve = new Command("serve", "Run the HTTP API (and, with --role all, the workers in the same process).");
        serve.SetAction(async (result, ct) =>
        {
            await using var app = LikenessHost.BuildApp(CommonOptions.Overrides(result));
            await app.RunAsync();
            return 0;
        });
        return serve;
    }
}
