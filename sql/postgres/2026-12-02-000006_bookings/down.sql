DROP TABLE booking_attempts;
DROP TABLE bookings;
