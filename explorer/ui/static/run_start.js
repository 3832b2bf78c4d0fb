// Run: the page numbers its Runs, so that a Stop names the one it means (generate_run.page_run).
(...args) => { args[args.length - 1] = window.aeRun ? window.aeRun.start() : ''; return args; }
