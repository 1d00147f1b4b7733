/** Runs a bench script's main function: exits 0 when it resolves, prints the error and exits 1 when it throws. */
export function runScript(main: () => Promise<void>): void {
  main().then(
    // Exiting also ends the fixture processes (their exit handlers kill them).
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
