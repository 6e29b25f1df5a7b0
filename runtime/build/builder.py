"""Build an image from a Dockerfile: each step cached by its parent and inputs; RUN in a container."""

import contextlib
import posixpath
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from runtime.build import dockerfile as df
from runtime.build.cache import BuildCache, step_key
from runtime.build.context import BuildContext
from runtime.build.copy import copy_into_layer, parse_chown
from runtime.build.errors import BuildError, DockerfileError
from runtime.build.layers import diff_from_upper, finish_layer
from runtime.build.state import BuildState, materialize
from runtime.errors import BerthError, NotFound
from runtime.registry import media

DEFAULT_LIMITS = {"memory": "1g", "pids": 1024}
ENV_EXPANDED = (
    "ENV",
    "ADD",
    "COPY",
    "WORKDIR",
    "EXPOSE",
    "VOLUME",
    "USER",
    "LABEL",
    "STOPSIGNAL",
    "ARG",
)


@dataclass
class BuildResult:
    """The built image and, per step, its instruction and whether the cache answered it."""

    image: object
    steps: list[dict] = field(default_factory=list)

    @property
    def cached_steps(self) -> int:
        """How many steps came from the cache."""
        return sum(1 for s in self.steps if s["cached"])


class _Build:
    """The state of one build while it runs."""

    def __init__(self, builder, ctx, log, build_args, network, limits, no_cache):
        self.b = builder
        self.ctx = ctx
        self.log = log or (lambda text: None)
        self.build_args = dict(build_args or {})
        self.network = network
        self.limits = limits
        self.no_cache = no_cache
        self.args: dict[str, str] = {}
        self.meta_args: dict[str, str] = {}
        self.pending: dict[str, Path] = {}
        self.created: list[str] = []
        self.scratch = Path(builder.store.layout.scratch())
        self.counter = 0
        self.cmd_seen = False

    # --- helpers ------------------------------------------------------------------------

    def vars(self, state: BuildState) -> dict:
        """Variables visible to expansion: build args, overridden by the image env."""
        out = dict(self.args)
        out.update(state.env())
        return out

    def lower_dirs(self, state: BuildState) -> list[Path]:
        """Unpacked layer directories of `state`, lowest first."""
        layout = self.b.store.layout
        if any(not layout.layer_path(d["diff_id"]).is_dir() for d in state.layers):
            # New layers are only tarballs until an image holds them: store one to look inside.
            self.image_of(state)
        return [self.b.store.layout.layer_path(d["diff_id"]) for d in state.layers]

    def image_of(self, state: BuildState, tag=None):
        """The store image of `state` (made if needed; remembered for cleanup)."""
        image, created = materialize(self.b.store, state, self.scratch, self.pending, tag)
        if created:
            self.created.append(image.id)
        return image

    def new_tar(self) -> Path:
        """A fresh path for a layer tar in this build's scratch dir."""
        self.counter += 1
        return self.scratch / f"layer-{self.counter}.tar"

    def add_layer(self, state: BuildState, tar: Path) -> None:
        """Gzip a layer tar and append it to `state` as a pending blob."""
        blob = finish_layer(tar, self.scratch)
        tar.unlink(missing_ok=True)
        self.pending[blob.digest] = blob.path
        state.add_layer(blob)

    # --- steps --------------------------------------------------------------------------

    def step_from(self, ins: df.Instruction) -> tuple[BuildState, str]:
        """FROM: the base state and the first cache key (the image id)."""
        words = df.split_words(df.expand(ins.args, self.args, ins.line), ins.line)
        if len(words) == 3 and words[1].lower() == "as":
            words = words[:1]
        if len(words) != 1:
            raise DockerfileError(f"line {ins.line}: FROM takes one image (got {ins.args!r})")
        name = words[0]
        if name == "scratch":
            return BuildState.scratch(media.host_platform()), "scratch"
        image = self.b.base_image(name, self.log)
        return BuildState.of_image(self.b.store, image), image.id

    def cache_input(self, ins: df.Instruction, state: BuildState) -> tuple[str, str]:
        """(canonical instruction text, extra) that together with the parent key name the step."""
        if ins.cmd == "RUN":
            # Build args reach RUN's environment, so they are part of its identity.
            used = sorted(f"{k}={v}" for k, v in self.args.items())
            return ins.original, "\n".join(used)
        if ins.cmd in ("COPY", "ADD"):
            srcs, dest = self.copy_args(ins, state)
            paths = [p for s in srcs for p in self.ctx.sources(s, f"line {ins.line}: {ins.cmd}")]
            return f"{ins.cmd} {ins.flags} {srcs} {dest}", self.ctx.checksum(paths)
        text = ins.args if isinstance(ins.args, str) else " ".join(ins.args)
        expanded = (
            df.expand(text, self.vars(state), ins.line, keep_escapes=True)
            if ins.cmd in ENV_EXPANDED
            else text
        )
        return f"{ins.cmd} {expanded}", ""

    def copy_args(self, ins, state) -> tuple[list[str], str]:
        """COPY/ADD sources and destination, variables expanded."""
        if ins.json_form:
            words = [df.expand(w, self.vars(state), ins.line) for w in ins.args]
        else:
            words = df.split_words(
                df.expand(ins.args, self.vars(state), ins.line, keep_escapes=True), ins.line
            )
        if len(words) < 2:
            raise DockerfileError(f"line {ins.line}: {ins.cmd} needs a source and a destination")
        return words[:-1], words[-1]

    def run_step(self, ins: df.Instruction, state: BuildState) -> BuildState:
        """Run one instruction on a copy of `state`; returns the new state."""
        new = state.copy()
        handler = getattr(self, f"do_{ins.cmd.lower()}")
        handler(ins, new)
        return new

    def do_arg(self, ins, state) -> None:
        """ARG: declare build args (values from --build-arg, defaults, or pre-FROM ARGs)."""
        for word in df.split_words(ins.args, ins.line):
            name, eq, default = word.partition("=")
            if name in self.build_args:
                value = self.build_args[name]
            elif eq:
                value = df.expand(default, self.vars(state), ins.line)
            else:
                value = self.meta_args.get(name, "")
            self.args[name] = value

    def do_env(self, ins, state) -> None:
        """ENV: set variables in the image config."""
        text = df.expand(ins.args, self.vars(state), ins.line, keep_escapes=True)
        for key, value in df.key_values(text, ins.line, "ENV", legacy=True):
            state.set_env(key, value)
        state.add_history(ins.original, empty=True)

    def do_label(self, ins, state) -> None:
        """LABEL: add labels."""
        text = df.expand(ins.args, self.vars(state), ins.line, keep_escapes=True)
        labels = state.inner.setdefault("Labels", {}) or {}
        for key, value in df.key_values(text, ins.line, "LABEL", legacy=False):
            labels[key] = value
        state.inner["Labels"] = labels
        state.add_history(ins.original, empty=True)

    def do_workdir(self, ins, state) -> None:
        """WORKDIR: set (and create when missing) the working directory."""
        path = df.expand(ins.args, self.vars(state), ins.line)
        current = state.inner.get("WorkingDir") or "/"
        path = posixpath.normpath(posixpath.join(current, path))
        state.inner["WorkingDir"] = path
        rel = path.lstrip("/")
        if rel and not any((d / rel).is_dir() for d in self.lower_dirs(state)):
            # Docker creates a missing working directory; it becomes a small layer.
            tar = self.new_tar()
            from runtime.build.copy import LayerWriter

            writer = LayerWriter(tar, self.lower_dirs(state), None, None)
            try:
                writer.parents(rel + "/x")
            finally:
                writer.close()
            self.add_layer(state, tar)
            state.add_history(ins.original, empty=False)
        else:
            state.add_history(ins.original, empty=True)

    def do_user(self, ins, state) -> None:
        """USER: set the user later steps and containers run as."""
        state.inner["User"] = df.expand(ins.args, self.vars(state), ins.line)
        state.add_history(ins.original, empty=True)

    def do_expose(self, ins, state) -> None:
        """EXPOSE: record ports."""
        ports = state.inner.get("ExposedPorts") or {}
        for word in df.split_words(df.expand(ins.args, self.vars(state), ins.line), ins.line):
            port, _, proto = word.partition("/")
            proto = (proto or "tcp").lower()
            if (
                not port.isdigit()
                or not 0 < int(port) < 65536
                or proto not in ("tcp", "udp", "sctp")
            ):
                raise DockerfileError(f"line {ins.line}: invalid port {word!r}")
            ports[f"{int(port)}/{proto}"] = {}
        state.inner["ExposedPorts"] = ports
        state.add_history(ins.original, empty=True)

    def do_volume(self, ins, state) -> None:
        """VOLUME: record volume mount points."""
        words = (
            ins.args
            if ins.json_form
            else df.split_words(df.expand(ins.args, self.vars(state), ins.line), ins.line)
        )
        volumes = state.inner.get("Volumes") or {}
        for word in words:
            if not word.startswith("/"):
                raise DockerfileError(f"line {ins.line}: VOLUME path {word!r} must be absolute")
            volumes[word] = {}
        state.inner["Volumes"] = volumes
        state.add_history(ins.original, empty=True)

    def _command(self, ins) -> list[str]:
        if ins.json_form:
            return list(ins.args)
        if not ins.args:
            return []
        return ["/bin/sh", "-c", ins.args]

    def do_cmd(self, ins, state) -> None:
        """CMD: the default command."""
        state.inner["Cmd"] = self._command(ins) or None
        self.cmd_seen = True
        state.add_history(ins.original, empty=True)

    def do_entrypoint(self, ins, state) -> None:
        """ENTRYPOINT: the entrypoint."""
        state.inner["Entrypoint"] = self._command(ins) or None
        if not self.cmd_seen:
            # Docker: an ENTRYPOINT drops the Cmd inherited from the base image.
            state.inner["Cmd"] = None
        state.add_history(ins.original, empty=True)

    def do_stopsignal(self, ins, state) -> None:
        """STOPSIGNAL: the stop signal."""
        state.inner["StopSignal"] = df.expand(ins.args, self.vars(state), ins.line)
        state.add_history(ins.original, empty=True)

    def do_maintainer(self, ins, state) -> None:
        """MAINTAINER: the image author."""
        state.config["author"] = ins.args
        state.add_history(ins.original, empty=True)

    def do_copy(self, ins, state, add=False) -> None:
        """COPY (and ADD): context files as a new layer."""
        what = f"line {ins.line}: {ins.cmd}"
        srcs, dest = self.copy_args(ins, state)
        paths = []
        for src in srcs:
            if add and (src.startswith("http://") or src.startswith("https://")):
                raise BuildError(f"{what}: ADD from a URL is not supported (use RUN with wget)")
            paths.extend(self.ctx.sources(src, what))
        lower = self.lower_dirs(state)
        chmod = None
        if ins.flags.get("chmod"):
            try:
                chmod = int(ins.flags["chmod"], 8)
            except ValueError:
                raise DockerfileError(f"{what}: invalid --chmod {ins.flags['chmod']!r}") from None
        owner = parse_chown(ins.flags.get("chown"), lower, what)
        tar = self.new_tar()
        copy_into_layer(
            self.ctx, paths, dest, state.inner.get("WorkingDir") or "/", tar, lower,
            owner=owner, chmod=chmod, add=add, what=what,
        )  # fmt: skip
        self.add_layer(state, tar)
        state.add_history(ins.original, empty=False)

    def do_add(self, ins, state) -> None:
        """ADD: COPY that also unpacks local tar archives."""
        self.do_copy(ins, state, add=True)

    def do_run(self, ins, state) -> None:
        """RUN: run the command in a Berth container; its upper dir becomes the layer."""
        image = self.image_of(state)
        argv = list(ins.args) if ins.json_form else ["/bin/sh", "-c", ins.args]
        env = [f"{k}={v}" for k, v in self.args.items() if k not in state.env()]
        env += state.inner.get("Env") or []
        spec = {
            "image": image.id,
            "name": f"{self.b.config.prefix}-build-{uuid.uuid4().hex[:12]}",
            "command": argv,
            "entrypoint": [],
            "env": env,
            "working_dir": state.inner.get("WorkingDir") or None,
            "user": state.inner.get("User") or None,
            "network": {"mode": self.network},
            "limits": dict(self.limits),
        }
        rt = self.b.runtime
        cid = rt.run(spec)["id"]
        try:
            for _stream, _ts, data in rt.logs(cid, follow=True):
                self.log(data.decode(errors="replace"))
            code = rt.wait(cid)
            if code != 0:
                raise BuildError(
                    f"line {ins.line}: {ins.original!r} returned a non-zero code: {code}"
                )
            tar = self.new_tar()
            diff_from_upper(rt.store.paths(cid).upper, tar)
        finally:
            with contextlib.suppress(BerthError, OSError):
                rt.delete(cid, force=True)
        self.add_layer(state, tar)
        state.add_history(ins.original, empty=False)

    # --- the whole build ----------------------------------------------------------------

    def run(self, instructions, tag) -> BuildResult:
        """Run every instruction; returns the result with the final image tagged."""
        total = len(instructions)
        steps = []
        state, key = None, ""
        for number, ins in enumerate(instructions, 1):
            self.log(f"Step {number}/{total} : {ins.original}\n")
            if ins.cmd == "FROM":
                state, key = self.step_from(ins)
                # ARGs declared before FROM serve FROM only; a later bare ARG re-declares them.
                self.meta_args, self.args = dict(self.args), {}
                steps.append({"instruction": ins.original, "cached": True})
                self.log(f" ---> {key[7:19] if key.startswith('sha256:') else key}\n")
                continue
            if state is None:
                self.do_arg(ins, BuildState({}))
                steps.append({"instruction": ins.original, "cached": True})
                continue
            if ins.cmd == "ARG":
                self.do_arg(ins, state)  # changes what later steps see, not the image
            text, extra = self.cache_input(ins, state)
            key = step_key(key, text, extra)
            cached = None
            if ins.cmd != "ARG":
                cached = None if self.no_cache else self.b.cache.get(key, self.b.store)
                if cached is not None:
                    state = cached
                    self.log(" ---> Using cache\n")
                else:
                    state = self.run_step(ins, state)
                    self.b.cache.put(key, state)
            if ins.cmd == "CMD":
                self.cmd_seen = True
            steps.append(
                {"instruction": ins.original, "cached": ins.cmd == "ARG" or cached is not None}
            )
        image = self.image_of(state, tag)
        self.log(f"Successfully built {image.short_id}\n")
        if tag:
            self.log(f"Successfully tagged {tag}\n")
        return BuildResult(image, steps)

    def cleanup(self, keep: str | None) -> None:
        """Remove this build's intermediate images and its scratch files."""
        for image_id in self.created:
            if image_id != keep:
                with contextlib.suppress(BerthError):
                    self.b.store.remove(image_id, force=True)
        self.b.store.layout.discard(self.scratch)


class Builder:
    """Builds images with a runtime (for RUN) and its image store."""

    def __init__(self, runtime=None, config=None):
        if runtime is None:
            from runtime.api import Runtime

            runtime = Runtime(config)
        self.runtime = runtime
        self.config = runtime.config
        self.store = runtime.images
        self.cache = BuildCache(self.config)

    def base_image(self, name: str, log):
        """The FROM image: from the store, else pulled from its registry."""
        try:
            return self.store.resolve(name)
        except NotFound:
            pass
        from runtime.registry import CredentialStore, parse, pull

        ref = parse(name)
        creds = CredentialStore(self.config)
        log(f"Pulling {name}\n")
        result = pull(
            self.store,
            name,
            credentials=creds.get(ref.registry),
            insecure=creds.is_insecure(ref.registry),
        )
        return result.image

    def build(
        self,
        context,
        dockerfile: str = "Dockerfile",
        tag: str | None = None,
        *,
        build_args: dict | None = None,
        log=None,
        no_cache: bool = False,
        network: str = "none",
        limits: dict | None = None,
    ) -> BuildResult:
        """Build `context` (a directory or tar) with `dockerfile`; `log(text)` gets the output."""
        if tag:
            from runtime.images import reference

            tag = reference.normalize_ref(tag)
        with BuildContext(
            context, self.store.layout.tmp if self.store.layout.tmp.exists() else None
        ) as ctx:
            path = Path(dockerfile)
            if path.is_absolute() and path.is_file():
                text = path.read_text()
            else:
                text = ctx.file(dockerfile).read_text()
            instructions = df.parse(text)
            build = _Build(self, ctx, log, build_args, network, limits or DEFAULT_LIMITS, no_cache)
            result = None
            try:
                result = build.run(instructions, tag)
            finally:
                build.cleanup(result.image.id if result else None)
            return result
