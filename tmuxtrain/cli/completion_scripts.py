"""The completion scripts themselves, one writer per shell, from `completion.commands()`.

Each script asks `tmuxtrain _complete COMMAND` for job ids and names (the same program the
user typed, so a venv's tmuxtrain answers for its own home), and completes job files
(`*.yaml`, `*.yml`) and folders itself. After `--` (`add -- CMD`) the shell's own
completion takes over.
"""

from __future__ import annotations

from tmuxtrain.cli.completion import Arg, Command

HEAD = "{comment} {shell} completion for tmuxtrain, made by `tmuxtrain completion {shell}`.\n"


def _bash_kind(kind: str) -> str:
    """A kind as one word for the bash script: jobs, files, dirs, none, or =a,b,c."""
    if kind in ("jobs", "files", "dirs"):
        return kind
    return "=" + ",".join(kind.split()) if kind else "none"


def _sq(text: str) -> str:
    """Single-quoted for sh/bash/zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


BASH_HELPERS = r"""
_tmuxtrain_kind() {
    # Values of one kind for the word being completed ($cur): jobs that command $1 acts
    # on, job files, folders, or the words of =a,b,c.
    local IFS=$'\n' words
    case $2 in
        jobs)
            words=$("${COMP_WORDS[0]}" _complete "$1" 2>/dev/null)
            COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;
        files)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur")) ;;
        dirs)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur")) ;;
        =*)
            words=${2#=}
            COMPREPLY=($(compgen -W "${words//,/$'\n'}" -- "$cur")) ;;
    esac
    return 0
}

_tmuxtrain_args() {
    # $1 the command, $2 its options, $3 those that take a value, $4 its positionals'
    # kinds (a trailing * takes several), $5 where the command is in COMP_WORDS.
    local valued=" $3 " n=0 i skip=0 kind
    local -a kinds=($4)
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$2" -- "$cur"))
        return 0
    fi
    for ((i = $5 + 1; i < COMP_CWORD; i++)); do
        if ((skip)); then skip=0; continue; fi
        case ${COMP_WORDS[i]} in
            --*=*) ;;
            -*) [[ $valued == *" ${COMP_WORDS[i]} "* ]] && skip=1 ;;
            *) n=$((n + 1)) ;;
        esac
    done
    kind=${kinds[n]-}
    if [[ -z $kind && ${#kinds[@]} -gt 0 && ${kinds[${#kinds[@]}-1]} == *'*' ]]; then
        kind=${kinds[${#kinds[@]}-1]}
    fi
    [[ -n $kind ]] && _tmuxtrain_kind "$1" "${kind%'*'}"
    return 0
}
"""


def bash(cmds: list[Command]) -> str:
    top, subs = cmds[0], cmds[1:]
    top_flags = " ".join(f for a in top.options for f in a.flags)
    out = [
        HEAD.format(comment="#", shell="bash"),
        "# Load it now: source <(tmuxtrain completion bash)\n",
        "# For good: tmuxtrain completion bash > ~/.local/share/bash-completion/completions/"
        "tmuxtrain\n",
        BASH_HELPERS,
        "\n_tmuxtrain() {\n",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i cmd= at=0\n",
        "    COMPREPLY=()\n",
        "    for ((i = 1; i < COMP_CWORD; i++)); do\n",
        "        if [[ ${COMP_WORDS[i]} != -* ]]; then cmd=${COMP_WORDS[i]}; at=$i; break; fi\n",
        "    done\n",
        "    if [[ -z $cmd ]]; then\n",
        f"        local words={_sq(' '.join(c.name for c in subs))}\n",
        f"        [[ $cur == -* ]] && words={_sq(top_flags)}\n",
        '        COMPREPLY=($(compgen -W "$words" -- "$cur"))\n',
        "        return 0\n",
        "    fi\n",
        "    for ((i = at + 1; i < COMP_CWORD; i++)); do  # after --: a command line of its own\n",
        "        if [[ ${COMP_WORDS[i]} == -- ]]; then\n",
        "            compopt -o default 2>/dev/null\n",
        "            return 0\n",
        "        fi\n",
        "    done\n",
        "    case $cmd in\n",
    ]
    for c in subs:
        flags = " ".join(f for a in c.options for f in a.flags)
        valued = " ".join(f for a in c.options if a.metavar for f in a.flags)
        kinds = " ".join(_bash_kind(p.kind) + ("*" if p.many else "") for p in c.positionals)
        out.append(f"        {c.name})\n")
        values = [a for a in c.options if a.metavar]
        if values:
            out.append("            case $prev in\n")
            for a in values:
                what = (
                    f"_tmuxtrain_kind {c.name} {_sq(_bash_kind(a.kind))}; return 0"
                    if a.kind
                    else "return 0"
                )
                out.append(f"                {'|'.join(a.flags)}) {what} ;;\n")
            out.append("            esac\n")
        out.append(
            f"            _tmuxtrain_args {c.name} {_sq(flags)} {_sq(valued)} {_sq(kinds)}"
            ' "$at" ;;\n'
        )
    out += ["    esac\n", "    return 0\n", "}\n\n", "complete -F _tmuxtrain tmuxtrain\n"]
    return "".join(out)


def _zsh_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _zsh_action(command: str, kind: str) -> str:
    if kind == "jobs":
        return f"_tmuxtrain_jobs {command}"
    if kind == "files":
        return '_files -g "*.(yaml|yml)"'
    if kind == "dirs":
        return "_files -/"
    return f"({kind})" if kind else " "


def _zsh_specs(c: Command) -> list[str]:
    specs = []
    for a in c.options:
        exclude = f"({' '.join(a.flags)})" if len(a.flags) > 1 and not a.many else ""
        for flag in a.flags:
            spec = ("*" if a.many else "") + exclude + flag
            if a.metavar:
                spec += "="
            spec += f"[{_zsh_help(a.help)}]"
            if a.metavar:
                spec += f":{a.metavar.replace(':', '')}:{_zsh_action(c.name, a.kind)}"
            specs.append(spec)
    for p in c.positionals:
        lead = "*:" if p.many else ("::" if p.optional else ":")
        specs.append(f"{lead}{p.metavar.replace(':', '')}:{_zsh_action(c.name, p.kind)}")
    return specs


def zsh(cmds: list[Command]) -> str:
    top, subs = cmds[0], cmds[1:]
    described = " ".join(_sq(f"{c.name}:{c.help}") for c in subs)
    top_specs = [_sq(f"(- *){flag}[{_zsh_help(a.help)}]") for a in top.options for flag in a.flags]
    out = [
        "#compdef tmuxtrain\n",
        HEAD.format(comment="#", shell="zsh"),
        "# Load it now (after compinit): source <(tmuxtrain completion zsh)\n",
        '# For good: tmuxtrain completion zsh > "${fpath[1]}/_tmuxtrain"\n\n',
        "_tmuxtrain_jobs() {\n",
        "    local -a jobs\n",
        '    jobs=(${(f)"$($_tmuxtrain_prog _complete --shell zsh $1 2>/dev/null)"})\n',
        "    _describe -t jobs job jobs\n",
        "}\n\n",
        "_tmuxtrain() {\n",
        "    local _tmuxtrain_prog=${words[1]} curcontext=$curcontext state line ret=1\n",
        "    _arguments -C \\\n",
        *(f"        {s} \\\n" for s in top_specs),
        "        ': :->command' \\\n",
        "        '*:: :->argument' && ret=0\n",
        "    case $state in\n",
        "        (command)\n",
        f"            local -a commands=({described})\n",
        "            _describe -t commands command commands && ret=0 ;;\n",
        "        (argument)\n",
        "            curcontext=${curcontext%:*:*}:tmuxtrain-$words[1]:\n",
        "            case $words[1] in\n",
    ]
    for c in subs:
        specs = " \\\n                    ".join(_sq(s) for s in _zsh_specs(c))
        out.append(f"                ({c.name})\n")
        out.append(f"                    _arguments -s -S \\\n                    {specs}")
        out.append(" && ret=0 ;;\n")
    out += [
        "            esac ;;\n",
        "    esac\n",
        "    return ret\n",
        "}\n\n",
        'if [[ $funcstack[1] == _tmuxtrain ]]; then _tmuxtrain "$@"; '
        "else compdef _tmuxtrain tmuxtrain; fi\n",
    ]
    return "".join(out)


def _fq(text: str) -> str:
    """Single-quoted for fish."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_value(command: str, kind: str) -> str:
    if kind == "jobs":
        return f"-x -a {_fq(f'(__tmuxtrain_jobs {command})')}"
    if kind == "files":
        return "-r -F"
    if kind == "dirs":
        return "-x -a '(__fish_complete_directories)'"
    return f"-x -a {_fq(kind)}" if kind else "-x"


def _fish_flags(a: Arg) -> str:
    parts = []
    for flag in a.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    return " ".join(parts)


def fish(cmds: list[Command]) -> str:
    top, subs = cmds[0], cmds[1:]
    out = [
        HEAD.format(comment="#", shell="fish"),
        "# Load it now: tmuxtrain completion fish | source\n",
        "# For good: tmuxtrain completion fish > ~/.config/fish/completions/tmuxtrain.fish\n\n",
        "function __tmuxtrain_jobs\n",
        "    set -l prog (commandline -opc)[1]\n",
        "    $prog _complete --shell fish $argv 2>/dev/null\n",
        "end\n\n",
        "complete -c tmuxtrain -f\n",
    ]
    for a in top.options:
        out.append(
            f"complete -c tmuxtrain -n __fish_use_subcommand {_fish_flags(a)} -d {_fq(a.help)}\n"
        )
    for c in subs:
        out.append(f"complete -c tmuxtrain -n __fish_use_subcommand -a {c.name} -d {_fq(c.help)}\n")
    for c in subs:
        when = _fq(f"__fish_seen_subcommand_from {c.name}")
        for a in c.options:
            value = f" {_fish_value(c.name, a.kind)}" if a.metavar else ""
            out.append(
                f"complete -c tmuxtrain -n {when} {_fish_flags(a)}{value} -d {_fq(a.help)}\n"
            )
        for p in c.positionals:
            if p.kind == "files":
                suffixes = "(__fish_complete_suffix .yaml) (__fish_complete_suffix .yml)"
                out.append(f"complete -c tmuxtrain -n {when} -a {_fq(suffixes)}\n")
            elif p.kind:
                value = _fish_value(c.name, p.kind).replace("-x ", "", 1)
                out.append(f"complete -c tmuxtrain -n {when} {value} -d {_fq(p.help)}\n")
    return "".join(out)
