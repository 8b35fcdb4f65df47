# What the module's options know about ZFS properties. Which properties
# exist, which are create-only or read-only and what their values look like
# are ZFS rules, in ./rules.nix (from zpersist-core's data).
_: {
  # Properties with a typed option of their own on a dataset. They go into
  # the plan's `properties` object, so setting one both ways is ambiguous.
  typed = [
    "recordsize"
    "compression"
    "quota"
  ];
}
