return MoeSharp.Cli.MoeCommand.Run(args);
