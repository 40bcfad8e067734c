using System.CommandLine;
using Likeness.Cli;
using Likeness.Engine;
using Microsoft.Extensions.Options;

// Before anything loads libtorch: its OpenMP threads must not busy-wait on cores this process shares.
EngineThreads.ConfigureProcess();

var root = new RootCommand("Likeness: train personal FLUX.1 LoRAs from 15–30 photos and generate photos of the subject.")
{
    ServeCommand.Create(),
    WorkerCommand.Create(),
    AdminCommands.Teams(),
    AdminCommands.Keys(),
    AdminCommands.Credits(),
    EngineCommand.Create(),
    ClientCommands.Loras(),
    ClientCommands.Generate(),
};
foreach (var option in CommonOptions.All) root.Options.Add(option);
try
{
    return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (OptionsValidationException e)
{
    // A setting the process cannot run with: the reason, not a stack trace.
    await Console.Error.WriteLineAsync($"likeness: {string.Join(" ", e.Failures)}");
    return 2;
}
