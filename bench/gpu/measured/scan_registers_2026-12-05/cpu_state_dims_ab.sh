#!/bin/bash
# CPU A/B: scan dims from the memref (old) vs the spec's constants (new).
cd /work/main
for mixer in gdn hgrn2 retnet deltanet; do
  sed -E -e "s/^let linear( *)= .*/let linear\1= $mixer/" -e "s/eval_every( *)= .*/eval_every\1= none/" -e "s/log_every( *)= .*/log_every\1= 10/" examples/study/families.hyb | sed '/^sweep {/,$d' > /tmp/cab/$mixer.hyb
  for round in 1 2 3; do
    for form in memref spec; do
      rm -rf /tmp/cab/run
      HYB_SCAN_DIMS=$form ./target/release/hybc train /tmp/cab/$mixer.hyb --threads 1 --steps 40 --out /tmp/cab/run > /tmp/cab/log 2>&1
      echo "$mixer $form $round $(grep -E '^step +(20|30|40) ' /tmp/cab/log | grep -o '[0-9]* tokens/s' | tr '\n' ' ') $(grep -o 'final loss [0-9.]*' /tmp/cab/log)"
    done
  done
done
