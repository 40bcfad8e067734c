using System.CommandLine;
using Likeness.Cli;

var root = new RootCommand("Likeness: train personal FLUX.1 LoRAs from 15–30 photos and generate photos of the subject.")
{
    ServeCommand.Create(),
    WorkerCommand.Create(),
    AdminCommands.Teams(),
    AdminCommands.Keys(),
    AdminCommands.Credits(),
    EngineCommand.Create(),
};
foreach (var option in CommonOptions.All) root.Options.Add(option);
return await root.Parse(args).InvokeAsync();
