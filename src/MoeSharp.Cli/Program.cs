using System.CommandLine;
using MoeSharp.Cli;
using MoeSharp.Cli.Commands;

var root = new RootCommand("moe: build, train, run, inspect and save Mixture-of-Experts models.")
{
    TrainCommand.Create(),
    GenerateCommand.Create(),
    EvalCommand.Create(),
    InspectCommand.Create(),
};
// Our own handler turns user errors into one line and exit code 2; System.CommandLine's would print a stack trace.
return CliErrors.Run(() => root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
