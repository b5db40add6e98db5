#!/bin/sh
# Regenerate the shipped prompts from their text (needs espeak-ng and sox from Debian).
set -eu
cd "$(dirname "$0")"
# Digits are read out one after another: their leading and trailing silence is cut.
TRIM=""
say() {
    name=$1; text=$2; voice=${3:-en-us}
    espeak-ng -v "$voice" -s 150 -w "/tmp/freecall-prompt-$name.wav" "$text"
    sox "/tmp/freecall-prompt-$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" gain -n -6 $TRIM
    rm -f "/tmp/freecall-prompt-$name.wav"
}
say mileage-exhausted "Sorry. Your mileage points are used up. Shop with us to earn more free calls."
say guild-exhausted "Sorry. The free calling balance for this card is used up."
say quota-used-up "Sorry. This card has no free calls left today."
say destination-not-allowed "Sorry. Free calls cannot be made to this number."
say billing-unavailable "Sorry. We cannot connect free calls right now. Please try again later."
say one-minute-left "You have one minute left."
say please-hold "Please hold while we connect you."
# Call-backs: what the issuer hears on answering (then the visitor's number digit by
# digit, then the question), and what the visitor hears once connected. Korean versions
# end in .ko (the card's language picks them).
say callback-request "A visitor of your business card asks for a free call back, from the number"
say callback-request.ko "명함을 보신 분이 무료 통화를 요청했습니다. 번호는" ko
say callback-press "Press 1 to accept, or 2 to decline."
say callback-press.ko "연결하시려면 1번, 거절하시려면 2번을 누르세요." ko
say callback-connected "Here is your free call. Connecting you now."
say callback-connected.ko "무료 통화를 연결합니다." ko
# A card's greetings: what the visitor hears when the issuer cannot take the call (an
# issuer may upload their own instead).
say greeting-no-answer "Hello. Thank you for calling. I cannot take your call right now. Please book a call on my card, and I will call you back."
say greeting-no-answer.ko "안녕하세요. 지금은 전화를 받을 수 없습니다. 명함에서 통화 예약을 해 주시면 다시 연락드리겠습니다." ko
say greeting-declined "Hello. Thank you for calling. I am in a meeting and cannot talk now. Please book a call on my card."
say greeting-declined.ko "안녕하세요. 지금은 회의 중이라 통화할 수 없습니다. 명함에서 통화 예약을 해 주세요." ko
say greeting-busy "Hello. I am on another call right now. Please try again a little later, or book a call on my card."
say greeting-busy.ko "안녕하세요. 지금은 다른 통화 중입니다. 잠시 후 다시 요청하시거나 명함에서 통화 예약을 해 주세요." ko
# Both parties of a recorded call hear this first (and it is the recording's first words).
say call-recorded "This call is recorded."
say call-recorded.ko "이 통화는 녹음됩니다." ko
TRIM="silence 1 0.02 1% reverse silence 1 0.02 1% reverse pad 0 0.12"
n=0
for word in zero one two three four five six seven eight nine; do
    say "digit-$n" "$word"; n=$((n + 1))
done
n=0
for word in 공 일 이 삼 사 오 육 칠 팔 구; do
    say "digit-$n.ko" "$word" ko; n=$((n + 1))
done
