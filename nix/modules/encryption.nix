# Native ZFS encryption (docs/encryption.md): `zpersist.datasets.<name>.encryption`
# (created encrypted; children inherit the root), raw sends of every
# encrypted dataset to every target (`zpersist.replication.targets.<name>.raw`),
# and which keys boot asks for (`boot.zfs.requestEncryptionCredentials`:
# only the essential passphrase roots zpersist declares, never a replica
# received here).
{ config, lib, ... }:
let
  inherit (lib)
    mkOption
    types
    mkIf
    mkDefault
    filter
    attrNames
    concatMap
    elem
    intersectLists
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;
  enc = zlib.encryption;

  algorithms = filter (v: v != "off") (builtins.fromJSON (builtins.readFile ../lib/rules.json)).properties.native.encryption.values;

  encryptionModule = {
    options = {
      algorithm = mkOption {
        type = types.enum algorithms;
        default = "aes-256-gcm";
        description = "ZFS `encryption`: the cipher (`on` is the ZFS default, aes-256-gcm on OpenZFS 2.x).";
      };
      keyformat = mkOption {
        type = types.enum [
          "raw"
          "hex"
          "passphrase"
        ];
        example = "raw";
        description = "ZFS `keyformat`: a 32-byte `raw` or `hex` key, or a `passphrase`.";
      };
      keylocation = mkOption {
        type = types.strMatching "prompt|file:///.+|https?://.+";
        example = "file:///run/keys/services.key";
        description = ''
          ZFS `keylocation`: `file:///...` (a key file on this host, loaded
          by zpersist before the services that need it), `https://...`, or
          `prompt` (a passphrase asked for at boot when the pool is imported
          then, through nixpkgs' `boot.zfs.requestEncryptionCredentials`).
          `ensure-datasets` creates a `prompt` dataset only by hand (it
          never asks for a passphrase).
        '';
      };
      required = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether the host needs this key to be up. `false`: a missing key
          keeps only the services on these datasets down (their mount checks
          fail, locked, and notify), never the boot; such a root is never
          asked for at boot.
        '';
      };
    };
  };

  encryptedKeys = enc.encryptedKeys cfg.datasets;
  roots = filter (key: cfg.datasets.${key}.encryption != null) (attrNames cfg.datasets);
  fullName = key: "${cfg.pool}/${key}";
  opt = key: ''zpersist.datasets."${key}"'';

  keyProperties = [
    "encryption"
    "keyformat"
    "keylocation"
  ];
  twice = concatMap (
    key:
    let
      both = intersectLists keyProperties (attrNames cfg.datasets.${key}.properties);
    in
    lib.optional (both != [ ]) {
      assertion = false;
      message = "${opt key}.properties sets ${lib.concatStringsSep ", " both} and ${opt key}.encryption is set too: declare the key in one place, ${opt key}.encryption.";
    }
  ) roots;

  pairs = cfg.replication.internal.pairs or [ ];
  plainSends = concatMap (
    p:
    let
      t = cfg.replication.targets.${p.target} or { };
    in
    lib.optional (elem p.key encryptedKeys && (t.raw or null) == false) {
      assertion = false;
      message = ''zpersist.replication.targets."${p.target}".raw is false, but ${opt p.key} is encrypted (encryption root ${fullName (enc.rootOf cfg.datasets p.key)}): a plain send decrypts it on the way and "${p.target}" would hold its data in plaintext. Remove `raw = false` (encrypted datasets are sent raw, `zfs send -w`, and the target never needs the key), or stop replicating ${opt p.key} to "${p.target}".'';
    }
  ) pairs;

  # Boot asks only for the essential passphrase roots declared here: never
  # for a replica received on this host (nixpkgs' default, `true`, asks
  # for every encrypted dataset of every pool it imports), never for an
  # optional key. File keys are zpersist's to load (docs/encryption.md).
  bootCredentials = map fullName (
    filter (
      key:
      let
        e = cfg.datasets.${key}.encryption;
      in
      e.required && e.keylocation == "prompt"
    ) roots
  );
  # zpersist-load-key-<root>.service for each root whose key is a file on
  # this host: loaded after the pools are imported, before
  # zpersist-datasets.service mounts the root's datasets (and so before
  # every mount check and service). Wanted by zpersist-datasets, required
  # by nothing: a missing key fails this unit alone (notified), the
  # datasets stay locked and only their services' mount checks fail.
  fileRoots = filter (key: lib.hasPrefix "file://" cfg.datasets.${key}.encryption.keylocation) roots;
  unitNameOf = full: "zpersist-load-key-${lib.concatMapStrings (s: if lib.isList s then "-" else s) (builtins.split "[^a-zA-Z0-9_.-]+" full)}";
  keyUnitOf =
    key:
    let
      e = cfg.datasets.${key}.encryption;
      full = fullName key;
      under = filter (k: enc.rootOf cfg.datasets k == key) encryptedKeys;
    in
    {
      name = unitNameOf full;
      description = "load the key of ${full} (${e.keylocation})";
      command = [
        "${cfg.package}/bin/zpersist-load-key"
        full
      ];
      remainAfterExit = true;
      # zfs load-key reads a file: seconds; bounded like every zpersist unit.
      timeout = "2min";
      wants = [ "zfs-import.target" ];
      after = [ "zfs-import.target" ];
      before = [ cfg.internal.unitName ];
      wantedBy = [ cfg.internal.unitName ];
      path = zlib.unit.bootedZfs config.boot.zfs.package;
      zfs = true;
      network = "none";
      # The key file may be anywhere on this host (/run/keys, /etc/secrets,
      # a USB stick): the file system stays readable; nothing is written.
      hardening = zlib.unit.profiles.hostMounts;
      serviceConfig = {
        CapabilityBoundingSet = [
          "CAP_SYS_ADMIN"
          "CAP_DAC_READ_SEARCH"
        ];
      };
      notify = {
        datasets = map fullName under;
        summary = "zpersist-load-key: the key of ${full} (${e.keylocation})${
          lib.optionalString (!e.required) ", optional"
        }: until it is loaded its datasets stay locked and the services on them down";
      };
    };

  receivesHere = lib.any (t: (t.host or null) == null) (lib.attrValues (cfg.replication.targets or { }));
in
{
  options.zpersist.datasets = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.encryption = mkOption {
          type = types.nullOr (types.submodule encryptionModule);
          default = null;
          example = lib.literalExpression ''
            { keyformat = "raw"; keylocation = "file:///run/keys/services.key"; }
          '';
          description = ''
            Native ZFS encryption: the dataset is created encrypted, its own
            encryption root, and every declared dataset below it inherits
            that root (one key). An existing unencrypted dataset is never
            encrypted in place: `ensure-datasets` reports the difference and
            fails, naming the way to move the data into a new encrypted
            dataset. Replication sends it raw to every target.
          '';
        };
      }
    );
  };

  options.zpersist.replication.targets = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.raw = mkOption {
          type = types.nullOr types.bool;
          default = null;
          description = ''
            Raw sends (`zfs send -w`, syncoid `--sendoptions=w`). `null`: raw
            for every encrypted dataset (the target holds ciphertext and
            never needs the key), as the source has them for the others.
            `true`: raw for all. `false`: plain sends, which for an encrypted
            dataset is refused at evaluation (the target would hold
            plaintext).
          '';
        };
      }
    );
  };

  options.zpersist.internal.keyUnits = mkOption {
    type = types.listOf types.str;
    readOnly = true;
    internal = true;
    description = "The zpersist-load-key-<root> units, one per encryption root with a file key.";
  };

  options.zpersist.internal.encryptedKeys = mkOption {
    type = types.listOf types.str;
    readOnly = true;
    internal = true;
    description = "The declared datasets (names relative to the pool) that are encrypted, roots and inheriting children.";
  };

  config = lib.mkMerge [
    {
      zpersist.internal.encryptedKeys = encryptedKeys;
      zpersist.internal.keyUnits = map (key: "${unitNameOf (fullName key)}.service") fileRoots;
    }
    (mkIf cfg.enable (zlib.unit.perService (map keyUnitOf fileRoots)))
    (mkIf cfg.enable {
      assertions = twice ++ plainSends;
      boot.zfs.requestEncryptionCredentials = mkIf (roots != [ ] || receivesHere) (mkDefault bootCredentials);
    })
  ];
}
