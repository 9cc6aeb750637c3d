"""farebox.agent: the validator agent that runs on every bus validator and turnstile."""
