using System.CommandLine;
using MoeSharp.Diagnostics;

namespace MoeSharp.Cli.Commands;

/// <summary><c>moe inspect</c>: writes a run folder's HTML report and prints where it is.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var runDir = new Argument<DirectoryInfo>("RUN_DIR") { Description = "The run folder the trainer wrote (config.json, metrics.jsonl, routing.jsonl, ...)." };
        var command = new Command("inspect", "Write a self-contained HTML report (loss, routing heatmaps, alerts) into a run folder.") { runDir };
        command.SetAction(p =>
        {
            Console.WriteLine(HtmlReport.Write(p.GetValue(runDir)!.FullName));
            return 0;
        });
        return command;
    }
}
