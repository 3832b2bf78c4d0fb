// Stop: the page stops drawing the Run at once, and the server is told which Run to stop.
(...args) => { args[args.length - 1] = window.aeRun ? window.aeRun.stop() : ''; return args; }
