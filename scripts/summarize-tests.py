"""Prints the closing line CI reads: 'N passed, N failed, N skipped'."""
import json
import sys

passed = failed = skipped = 0
with open(sys.argv[1]) as log:
    for line in log:
        result = json.loads(line).get("result", "")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{skipped} skipped (a skip says why in the log above)")
print(f"{passed} passed, {failed} failed")
