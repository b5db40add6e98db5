#!/bin/sh
# Regenerate the shipped prompts from their text (needs espeak-ng and sox from Debian).
set -eu
cd "$(dirname "$0")"
say() {
    name=$1; text=$2
    espeak-ng -v en-us -s 150 -w "/tmp/freecall-prompt-$name.wav" "$text"
    sox "/tmp/freecall-prompt-$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" gain -n -6
    rm -f "/tmp/freecall-prompt-$name.wav"
}
say mileage-exhausted "Sorry. Your mileage points are used up. Shop with us to earn more free calls."
say guild-exhausted "Sorry. The free calling balance for this card is used up."
say quota-used-up "Sorry. This card has no free calls left today."
say destination-not-allowed "Sorry. Free calls cannot be made to this number."
say billing-unavailable "Sorry. We cannot connect free calls right now. Please try again later."
say one-minute-left "You have one minute left."
say please-hold "Please hold while we connect you."
