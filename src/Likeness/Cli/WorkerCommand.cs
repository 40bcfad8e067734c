using System.CommandLine;
using Likeness.Hosting;

namespace Likeness.Cli;

internal static class WorkerCommand
{
    public static Command Create()
    {
        var worker = new Command("worker", "Run job workers without an HTTP listener (--queues chooses: caption, training, generation, webhook).");
        worker.SetAction(async (result, ct) =>
        {
            using var host = LikenessHost.BuildWorker(CommonOptions.Overrides(result));
            await host.RunAsync();
            return 0;
        });
        return worker;
    }
}
