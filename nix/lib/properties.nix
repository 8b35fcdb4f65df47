# What the modules know about ZFS properties.
{ lib }:
{
  # Properties ZFS only takes at creation (`zfs set` refuses them, or for the
  # encryption ones only `zfs change-key` can change them). `ensure-datasets`
  # applies them when it creates a dataset; on an existing dataset whose
  # value differs it reports the difference and fails instead of changing it.
  createOnly = [
    "encryption"
    "keyformat"
    "pbkdf2iters"
    "casesensitivity"
    "normalization"
    "utf8only"
    "volblocksize"
  ];

  # Properties with a typed option of their own on a dataset. They go into
  # the plan's `properties` object, so setting one both ways is ambiguous.
  typed = [
    "recordsize"
    "compression"
    "quota"
  ];

  # Properties with their own field in the plan; the plan rejects them inside
  # `properties`.
  ownField = [
    "mountpoint"
    "canmount"
  ];

  # Every value `compression` takes (OpenZFS 2.x).
  compressionValues =
    [
      "on"
      "off"
      "lz4"
      "lzjb"
      "zle"
      "gzip"
      "zstd"
      "zstd-fast"
    ]
    ++ map (n: "gzip-${toString n}") (lib.range 1 9)
    ++ map (n: "zstd-${toString n}") (lib.range 1 19)
    ++ map (n: "zstd-fast-${toString n}") ((lib.range 1 10) ++ [
      20
      30
      40
      50
      60
      70
      80
      90
      100
      500
      1000
    ]);
}
