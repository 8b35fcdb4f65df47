# Renders the module's options as the Markdown of docs/options.md.
{ lib }:
let
  inherit (lib)
    concatMapStringsSep
    concatStringsSep
    filter
    hasInfix
    optionalString
    removePrefix
    unique
    ;

  # Descriptions are plain Markdown strings; older modules wrap them in
  # `lib.mdDoc`, which is accepted too.
  text = v: if builtins.isAttrs v then v.text or "" else if v == null then "" else toString v;

  # `default` and `example` come from `lib.renderOptionValue`: a
  # `literalExpression` (Nix code) or a `literalMD` (prose).
  value =
    v:
    if (v._type or "") == "literalMD" then
      " " + v.text
    else if hasInfix "\n" v.text then
      "\n\n```nix\n${lib.removeSuffix "\n" v.text}\n```"
    else
      " `${v.text}`";

  option =
    root: o:
    let
      files = unique (map (d: removePrefix (root + "/") (toString d)) o.declarations);
    in
    concatStringsSep "\n" (
      [
        "## `${o.name}`"
        ""
        (lib.removeSuffix "\n" (text o.description))
        ""
        "*Type:* ${o.type}"
      ]
      ++ lib.optionals (o ? default) [
        ""
        "*Default:*${value o.default}"
      ]
      ++ lib.optionals (o ? example) [
        ""
        "*Example:*${value o.example}"
      ]
      ++ lib.optionals o.readOnly [
        ""
        "*Read-only.*"
      ]
      ++ [
        ""
        "*Declared in:* ${concatMapStringsSep ", " (f: "[`${f}`](../${f})") files}"
        ""
      ]
    );
in
{
  # `options`: the evaluated option tree; `root`: the repository's path as a
  # string, stripped from declaration paths so the output is the same in any
  # checkout and in the store.
  optionsMarkdown =
    {
      options,
      root,
      prefix ? [ "zpersist" ],
    }:
    let
      docs = filter (o: o.visible && !o.internal) (
        lib.optionAttrSetToDocList (lib.attrByPath prefix { } options)
      );
    in
    ''
      # zpersist NixOS module options

      <!-- Generated from nix/modules by tests/nix/eval.nix (attribute optionsMarkdown).
           Do not edit by hand: run
           UPDATE_DOCS=1 cargo test -p zpersist-e2e --test nix_modules -->

      Every option of the module, generated from its declarations. See
      [nix-module.md](nix-module.md) for how they fit together.

    ''
    + concatMapStringsSep "\n" (option root) docs;
}
