"""The command table: every command's name, where it lives, its one-line summary and its hidden aliases.

The table imports nothing, so `llmctl --help` can list the commands without loading a single command
module (each imports typer to declare its options). The typer app (`cli/app.typer_app`) imports the
modules when it is built; tests/test_cli_fast.py checks that each summary is still the first paragraph of
its command's docstring, so the fast help and the typer help cannot drift.

Adding a command is one row in its area's block: `Command(name, "llmctl.cli.module:function", summary)`.
"""

from __future__ import annotations

from collections import namedtuple

_Command = namedtuple("_Command", "name target summary aliases group", defaults=((), False))


class Command(_Command):
    """name; target "module:attribute" (the command function, or a group's typer.Typer when group=True);
    summary, the first paragraph of its help as `llmctl --help` lists it; aliases, hidden from help.

    A NamedTuple of collections, not a dataclass: dataclasses import inspect, ~5 ms of `llmctl --help`.
    """

    __slots__ = ()

    def load(self) -> object:
        from importlib import import_module

        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)


# The root command's own help and options, shared by the typer app and the fast help.
ROOT_HELP = """Local LLMs from a GGUF file, Hugging Face or any OCI registry to a running llama.cpp server;
multi-node vLLM/SGLang launch plans.

Examples:

  llmctl run gemma3:270m "Why is the sky blue?"

  llmctl create mymodel -f Modelfile

  llmctl list --json
"""
VERSION_HELP = "Show the version and exit."
HELP_HELP = "Show this message and exit."
HELP_OPTIONS = ("-h", "--help")

COMMANDS: tuple[Command, ...] = (
    # -- models and the local store ---------------------------------------------------------------------
    Command("create", "llmctl.cli.create:create", "Create a model from a Modelfile."),
    Command("package", "llmctl.cli.package:package",
            "Package GGUF weights, or a safetensors model folder, and their companions into a model artifact."),
    Command("list", "llmctl.cli.list:list_", "List stored models: NAME, ID, SIZE, MODIFIED.", ("ls",)),
    Command("show", "llmctl.cli.show:show",
            "Show a model's architecture, parameters, quantization, context, system prompt, parameters, license."),
    Command("inspect", "llmctl.cli.inspect:inspect", "Print a model's OCI manifest and config as JSON."),
    Command("export", "llmctl.cli.export:export",
            "Lay a model out as a folder: config.json, tokenizer and safetensors shards for vLLM, SGLang and "
            "transformers, or the .gguf with its companions. Files are hard links into the store when the folder "
            "is on the same file system (use --copy to edit them), copies otherwise; every file is checked against "
            "its digest."),
    Command("tag", "llmctl.cli.tag:tag", "Give a stored model another name (no data is copied).", ("cp",)),
    Command("rm", "llmctl.cli.rm:rm", "Remove models. Blobs are deleted once no other model uses them.",
            ("remove",)),
    Command("df", "llmctl.cli.df:df", "Show store usage: total, shared between models, and reclaimable bytes."),
    Command("prune", "llmctl.cli.prune:prune",
            "Delete blobs no model references and temp files of killed commands."),
    Command("verify", "llmctl.cli.verify:verify",
            "Re-hash every blob and check every model's manifest; exit 5 on corruption."),
    # -- registries ------------------------------------------------------------------------------------
    Command("pull", "llmctl.cli.pull:pull",
            "Pull a model into the local store. Interrupted pulls resume where they stopped."),
    Command("push", "llmctl.cli.push:push",
            "Push a model to an OCI registry. Blobs the registry already has are not sent again."),
    Command("login", "llmctl.cli.login:login",
            "Log in to a registry; credentials go to Docker's config.json, shared with docker, skopeo and oras."),
    Command("logout", "llmctl.cli.logout:logout", "Remove a registry's stored credentials."),
    # -- local runtime ---------------------------------------------------------------------------------
    Command("run", "llmctl.cli.run:run", "Run a model: answer PROMPT, or chat interactively."),
    Command("serve", "llmctl.cli.serve:serve",
            "Serve stored models over the OpenAI, Anthropic and Ollama HTTP APIs, with a web console, until Ctrl-C."),
    Command("ps", "llmctl.cli.ps:ps",
            "List models loaded in the gateway: NAME, ID, SIZE, PROCESSOR, UNTIL, PORT."),
    Command("load", "llmctl.cli.load:load",
            "Load NAME into the running gateway (`llmctl serve`) and keep it for --keep-alive."),
    Command("unload", "llmctl.cli.unload:unload",
            "Unload NAME from the gateway now (as `ollama stop`); requests in flight for it fail.", ("stop",)),
    Command("status", "llmctl.cli.status:status",
            "Show the gateway's URL, version, uptime, engine and loaded models. Exit code 8 if none is running."),
    Command("logs", "llmctl.cli.logs:logs",
            "Print the gateway log (`llmctl serve`) or, with NAME, that model's llama-server log."),
    # -- launch plans ----------------------------------------------------------------------------------
    Command("plan", "llmctl.cli.plan:plan",
            "Plan a vLLM/SGLang deployment: parallelism, prefill/decode pools, launch files. Offline; no GPU needed."),
    # -- benchmarking ----------------------------------------------------------------------------------
    Command("bench", "llmctl.cli.bench:bench",
            "Benchmark an OpenAI-compatible endpoint: TTFT, TPOT, ITL, E2E percentiles, throughput and goodput "
            "over a concurrency or request-rate sweep, as `vllm bench serve` reports them."),
    # -- sub-command groups (listed last, as typer lists groups) ---------------------------------------
    Command("runtime", "llmctl.cli.runtime:runtime_app",
            "Build and list llama-server engines (the inference runtime).", group=True),
)
