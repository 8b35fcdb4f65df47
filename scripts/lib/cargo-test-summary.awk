# Passes `cargo test --no-fail-fast` output (stdout and stderr merged)
# through unchanged, and ends it with a summary naming every failed test,
# by test binary, before cargo's own closing lines ("error: N targets
# failed: ..."), which stay last. Used by scripts/test.
#
# What it reads: "     Running <file> (<path>)" / "   Doc-tests <crate>" start
# a binary's output; "test <name> ... FAILED" is a failed test;
# "test result: ... N passed; M failed; K ignored; ..." a binary's counts;
# "error: test failed, to rerun pass `<args>`" ends a failed binary (which
# may have failed without a failed test: a crash, a timeout of the harness).
# With -v quiet=1 it prints only the summary (for a log shown already).

function flush_binary(args,    n) {
    if (pending_tests == "" && args == "")
        return
    if (args == "")
        args = current
    failed_binaries++
    n = failed_binaries
    binary_args[n] = args
    binary_tests[n] = pending_tests
    pending_tests = ""
}

BEGIN { holding = 0; held = ""; current = "?" }

holding { held = held $0 "\n"; next }

/^error: [0-9]+ targets? failed:$/ { holding = 1; held = $0 "\n"; next }

{ if (!quiet) { print; fflush() } }

/^ +Running / {
    current = $0
    sub(/^ +Running /, "", current)
    pending_tests = ""
    binaries++
}
/^ +Doc-tests / {
    current = $0
    sub(/^ +/, "", current)
    pending_tests = ""
    binaries++
}
/^test .* \.\.\. FAILED$/ {
    name = $0
    sub(/^test /, "", name)
    sub(/ \.\.\. FAILED$/, "", name)
    pending_tests = pending_tests "        " name "\n"
    failed_tests++
}
/^test result: / {
    for (i = 1; i <= NF; i++) {
        if ($(i) ~ /^passed;?$/) passed += $(i - 1)
        if ($(i) ~ /^failed;?$/) failed += $(i - 1)
        if ($(i) ~ /^ignored;?$/) ignored += $(i - 1)
    }
}
/^error: test failed, to rerun pass `/ {
    args = $0
    sub(/^error: test failed, to rerun pass `/, "", args)
    sub(/`$/, "", args)
    flush_binary(args)
}

END {
    if (failed_binaries > 0 || failed_tests > 0) {
        print ""
        print "== scripts/test: summary =="
        printf "%d passed, %d failed, %d ignored, in %d test binaries; %d binaries failed:\n",
            passed, failed, ignored, binaries, failed_binaries
        for (n = 1; n <= failed_binaries; n++) {
            print "    " binary_args[n]
            if (binary_tests[n] == "")
                print "        (no test reported FAILED: the binary itself failed; see its output above)"
            else
                printf "%s", binary_tests[n]
        }
        print "== end of summary; cargo's closing lines follow =="
    }
    printf "%s", held
}
