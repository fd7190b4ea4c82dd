using MoeSharp.Bench;

return args.Length > 0 && Harness.Commands.TryGetValue(args[0], out var run)
    ? run(args[1..])
    : Harness.Usage();
