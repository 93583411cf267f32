#!/bin/bash
cd /work/main
for mixer in gdn hgrn2 deltanet gla; do
  for round in 1 2 3; do
    for c in 64 8; do
      rm -rf /tmp/cab/run
      HYB_CKPT=$c ./target/release/hybc train /tmp/cab/$mixer.hyb --threads 1 --steps 40 --out /tmp/cab/run > /tmp/cab/log 2>&1
      echo "$mixer $c $round $(grep -E '^step +(20|30|40) ' /tmp/cab/log | grep -o '[0-9]* tokens/s' | tr '\n' ' ') $(grep -o 'final loss [0-9.]*' /tmp/cab/log)"
    done
  done
done
