"""The firmware's sensor drivers (firmware/lib/drivers.py) on fake `machine` objects."""

import drivers
from check import raises
from fake_machine import ADC, HX711Chip, Pin


def test_adc_level_is_linear_clamped_and_averaged():
    adc = ADC(10000)
    tank = drivers.AdcLevel(adc, empty=10000, full=50000, capacity=2000)
    assert tank.kind == "level"
    for raw, level in [(10000, 0), (30000, 1000), (50000, 2000), (20010, 501), (20009, 500),
                       (0, 0), (65535, 2000)]:
        adc.values = [raw]
        assert tank.read(0) == level, (raw, tank.read(0))
    adc.values = [29000, 31000, 30000, 30004]  # mean 30001
    adc.reads = 0
    assert tank.read(0) == 1000 and adc.reads == 4
    assert isinstance(tank.read(0), int)


def test_adc_level_with_a_sensor_that_reads_lower_when_fuller():
    adc = ADC(40000)
    tank = drivers.AdcLevel(adc, empty=60000, full=20000, capacity=500, samples=1)
    assert tank.read(0) == 250
    adc.values = [20000]
    assert tank.read(0) == 500
    adc.values = [65000]
    assert tank.read(0) == 0
    raises(ValueError, drivers.AdcLevel, adc, 100, 100, 10)
    raises(ValueError, drivers.AdcLevel, adc, 0, 100, 0)
    raises(ValueError, drivers.AdcLevel, adc, 0, 100, 10, 0)


def test_pulse_usage_counts_interrupts_and_carries_the_remainder():
    pin = Pin()
    meter = drivers.PulseUsage(pin, per_unit=450, units=1000)  # 450 pulses a litre, in ml
    assert meter.kind == "usage"
    assert pin.trigger == Pin.IRQ_RISING
    pin.fire(450)
    assert meter.read(0) == 1000
    assert meter.read(0) == 0
    pin.fire(1)  # 2.22 ml
    assert meter.read(0) == 2
    pin.fire(1)  # 0.22 carried + 2.22
    assert meter.read(0) == 2
    pin.fire(448)  # 450 pulses since the last whole litre: 1000 ml in all
    assert meter.read(0) == 1000 - 4
    pin.fire(450)
    assert meter.read(0) == 1000


def test_pulse_usage_survives_the_counter_wrapping():
    pin = Pin()
    meter = drivers.PulseUsage(pin, per_unit=2, trigger=Pin.IRQ_FALLING)
    assert pin.trigger == Pin.IRQ_FALLING
    meter._pulses = meter._seen = meter.MASK - 3  # as after ~2**30 pulses
    pin.fire(10)
    assert meter._pulses == 6
    assert meter.read(0) == 5
    raises(ValueError, drivers.PulseUsage, Pin(), 0)


def test_hx711_shifts_out_24_bit_twos_complement():
    chip = HX711Chip()
    hx = drivers.HX711(chip.dout, chip.sck)
    for value in [0, 1, 123456, -1, -123456, 0x7FFFFF, -0x800000]:
        chip.value = value
        assert hx.read_raw() == value
    assert chip.sck_level == 0
    chip.dout.value()  # ends the last conversion
    assert chip.pulses == [25] * 7  # 24 bits, then one pulse: channel A, gain 128


def test_hx711_gain_pulses_and_timeout():
    for gain, pulses in [(64, 27), (32, 26)]:
        chip = HX711Chip(-42)
        assert drivers.HX711(chip.dout, chip.sck, gain=gain).read_raw() == -42
        chip.dout.value()
        assert chip.pulses == [pulses]
    chip = HX711Chip(5)
    chip.ready = False
    hx = drivers.HX711(chip.dout, chip.sck, timeout_ms=3)
    raises(OSError, hx.read_raw)
    assert chip.pulses == [] and chip.sck_level == 0
    chip.ready = True
    assert hx.read_raw() == 5
    raises(ValueError, drivers.HX711, chip.dout, chip.sck, 100)


def test_scale_level_gives_whole_grams_left_minus_the_tare():
    chip = HX711Chip(8000 + 250 * 420)  # zero at 8000 counts, 420 counts a gram, 250 g on it
    hx = drivers.HX711(chip.dout, chip.sck)
    scale = drivers.ScaleLevel(hx, tare=50, scale_num=1, scale_den=420, zero=8000)
    assert scale.kind == "level"
    assert scale.read(0) == 200
    chip.value = 8000 + 40 * 420  # less than the container weighs: nothing left
    assert scale.read(0) == 0
    chip.value = 8000 + 4200  # 4.2 counts a gram: scale_num/scale_den = 10/42
    assert drivers.ScaleLevel(hx, 0, 10, 42, zero=8000, samples=1).read(0) == 1000
    chip.value = 8000 - 420 * 3  # a load cell wired the other way round: negative counts
    assert drivers.ScaleLevel(hx, 0, -1, 420, zero=8000).read(0) == 3
    raises(ValueError, drivers.ScaleLevel, hx, 0, 0, 1)
    raises(ValueError, drivers.ScaleLevel, hx, 0, 1, 1, 0, 0)
