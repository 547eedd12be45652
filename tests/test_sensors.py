"""Sensor sources, driven through gpiozero's mock pin factory (the real driver code runs)."""

import math
import warnings

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from thingsdk.core.consumable import Consumable
from thingsdk.sensors import LEVEL, USAGE, feed
from thingsdk.sensors.counter import UsageCounter
from thingsdk.sensors.flow import FlowMeter
from thingsdk.sensors.hx711 import HX711, LoadCell
from thingsdk.sensors.level import (Box, HorizontalCylinder, TankLevel, UltrasonicDistance,
                                    VerticalCylinder)
from thingsdk.sensors.simulated import SimulatedLevel

T0 = 1_700_000_000


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


# ---------------------------------------------------------------- flow meter

def pulse(pin, times):
    for _ in range(times):
        pin.drive_high()
        pin.drive_low()


def test_flow_meter_counts_rising_edges_into_millilitres(factory):
    meter = FlowMeter(17, pulses_per_litre=450, capacity=100_000, pin_factory=factory)
    pin = factory.pin(17)
    assert meter.kind == LEVEL and meter.read(T0) == 100_000
    pulse(pin, 900)  # two litres
    assert meter.consumed() == 2000
    assert meter.read(T0) == 98_000
    pulse(pin, 1)  # 1/450 l = 2.2 ml, floored
    assert meter.consumed() == 2002
    meter.reset()
    assert meter.read(T0) == 100_000
    meter.close()


def test_flow_meter_goes_below_zero_past_its_capacity(factory):
    meter = FlowMeter(17, pulses_per_litre=5.5, capacity=1000, pin_factory=factory)
    pulse(factory.pin(17), 11)  # 2 litres
    assert meter.read(T0) == -1000


def test_flow_meter_rejects_a_bad_calibration(factory):
    with pytest.raises(ValueError):
        FlowMeter(17, pulses_per_litre=0, capacity=1000, pin_factory=factory)


# ---------------------------------------------------------------- HX711 and load cell

class SimulatedHX711:
    """The chip's side of the protocol on mock pins: DOUT low when a conversion is waiting; each
    SCK rising edge puts the next bit (most significant first) on DOUT; the 25th pulls DOUT high.
    Pulses after the 24th are counted as the gain selection of the next conversion."""

    def __init__(self, factory, data, clock):
        self.data = factory.pin(data, pin_class=DataPin)
        self.clock = factory.pin(clock, pin_class=ClockPin)
        self.data.chip = self.clock.chip = self
        self.values = []  # conversions still to come
        self.extra_pulses = []  # pulses after the 24 bits, per finished conversion
        self._word = None  # the conversion being shifted out
        self._pulses = 0

    def polled(self):
        """DOUT is being read: start shifting out the next conversion if one is waiting."""
        if self._word is None:
            if not self.values:
                self.data.drive_high()  # busy: no conversion ready
                return
            self._word = self.values.pop(0) & 0xFFFFFF
            self._pulses = 0
            self.data.drive_low()
        elif self._word is not None and self._pulses > 24 and self.values:
            self.extra_pulses.append(self._pulses - 24)
            self._word = None
            self.polled()

    def clock_rose(self):
        self._pulses += 1
        if self._pulses <= 24:
            bit = (self._word >> (24 - self._pulses)) & 1
            self.data.drive_high() if bit else self.data.drive_low()
        else:
            self.data.drive_high()

    def finish(self):
        """Count the gain pulses of the last conversion."""
        self.extra_pulses.append(self._pulses - 24)
        self._word = None


class DataPin(MockPin):
    chip = None

    def _get_state(self):
        if self.chip is not None:
            self.chip.polled()
        return super()._get_state()


class ClockPin(MockPin):
    chip = None

    def _set_state(self, value):
        super()._set_state(value)
        if value and self.chip is not None:
            self.chip.clock_rose()


@pytest.fixture
def chip(factory):
    return SimulatedHX711(factory, 5, 6)


@pytest.mark.parametrize("value", [0, 1, 0x123456, 0x7FFFFF, -1, -0x800000, -12345])
def test_hx711_reads_24_bit_twos_complement(factory, chip, value):
    adc = HX711(5, 6, pin_factory=factory)
    chip.values.append(value)
    assert adc.read_raw() == value
    chip.finish()
    assert chip.extra_pulses == [1]  # gain 128 on channel A


def test_hx711_gain_selects_the_extra_pulses(factory, chip):
    adc = HX711(5, 6, gain=64, pin_factory=factory)
    chip.values += [10, 20]
    assert [adc.read_raw(), adc.read_raw()] == [10, 20]
    chip.finish()
    assert chip.extra_pulses == [3, 3]
    with pytest.raises(ValueError):
        HX711(7, 8, gain=100, pin_factory=factory)


def test_hx711_times_out_when_data_never_goes_ready(factory, chip):
    adc = HX711(5, 6, timeout=0.02, pin_factory=factory)
    with pytest.raises(TimeoutError):
        adc.read_raw()


def test_load_cell_tares_calibrates_and_averages(factory, chip):
    cell = LoadCell(HX711(5, 6, pin_factory=factory), counts_per_unit=1, samples=4)
    chip.values += [8000, 8010, 7990, 8000]  # the empty hopper
    assert cell.tare() == 8000
    chip.values += [50000, 50010, 49990, 50000]  # a 100 g weight
    assert cell.calibrate(100) == 420
    chip.values += [8000 + 420 * 250 + d for d in (-30, 10, 30, -10)]  # 250 g of beans, noisy
    assert cell.kind == LEVEL and cell.read(T0) == 250


def test_load_cell_with_negative_counts_and_a_reversed_cell(factory, chip):
    adc = HX711(5, 6, pin_factory=factory)
    cell = LoadCell(adc, counts_per_unit=-200.0, offset=-1000, samples=1)
    chip.values.append(-1000 - 200 * 30)
    assert cell.read(T0) == 30
    with pytest.raises(ValueError):
        LoadCell(cell.adc, counts_per_unit=0)


# ---------------------------------------------------------------- tank level

def test_tank_shapes():
    cylinder = VerticalCylinder(diameter=200, height=500)
    assert cylinder.volume(500) == round(math.pi * 100**2 * 500 / 1000)
    assert cylinder.volume(250) * 2 == pytest.approx(cylinder.volume(500), abs=1)
    assert cylinder.volume(-5) == 0 and cylinder.volume(900) == cylinder.volume(500)
    assert Box(100, 200, 300).volume(150) == 3000
    lying = HorizontalCylinder(diameter=400, length=1000)
    full = round(math.pi * 200**2 * 1000 / 1000)
    assert lying.volume(400) == full
    assert lying.volume(200) == pytest.approx(full / 2, abs=1)
    assert lying.volume(100) + lying.volume(300) == pytest.approx(full, abs=1)  # symmetric
    assert lying.volume(100) < full / 4  # less than linear near the bottom


def test_tank_level_from_a_distance_callable():
    distances = iter([30, 280, 530, 600])
    tank = TankLevel(Box(100, 100, 500), lambda: next(distances), offset=30)
    assert tank.capacity() == 5000
    assert [tank.read(T0) for _ in range(4)] == [5000, 2500, 0, 0]


class EchoPin(MockPin):
    """An echo pin whose edges carry timestamps from a virtual clock, so a ping's width is exact."""

    virtual_time = 0.0

    def _change_state(self, value):
        changed = super()._change_state(value)
        self._last_change = self.virtual_time
        return changed


class TriggerPin(MockPin):
    """A trigger pin that answers each ping at once with an echo `width` seconds wide."""

    echo = None
    width = 0.0

    def _set_state(self, value):
        super()._set_state(value)
        if value:
            self.echo.virtual_time = 0.0
            self.echo.drive_high()
            self.echo.virtual_time = self.width
            self.echo.drive_low()


def test_ultrasonic_distance_through_gpiozero(factory):
    echo = factory.pin(23, pin_class=EchoPin)
    trigger = factory.pin(24, pin_class=TriggerPin)
    trigger.echo = echo
    trigger.width = 2 * 0.4 / 343.26  # the out-and-back time for 0.4 m
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gpiozero advises pigpio for accuracy
        distance = UltrasonicDistance(23, 24, max_distance=2.0, pin_factory=factory)
        try:
            assert distance() == 400
            tank = TankLevel(VerticalCylinder(diameter=300, height=1000), distance, offset=100)
            assert tank.read(T0) == VerticalCylinder(300, 1000).volume(700)
        finally:
            distance.close()


# ---------------------------------------------------------------- usage counter and feed

def test_usage_counter_reports_use_since_the_last_read():
    counter = UsageCounter()
    assert counter.kind == USAGE and counter.read(T0) == 0
    counter.record()
    counter.record(4)
    assert counter.read(T0) == 5
    assert counter.read(T0) == 0
    with pytest.raises(ValueError):
        counter.record(-1)


def test_feed_passes_levels_and_usage_to_a_consumable():
    printer = Consumable("toner", "page", 2000)
    counter = UsageCounter()
    counter.record(30)
    assert feed(printer, counter, T0 + 3600) == 0  # counted use starts from a full slot
    assert printer.level(T0 + 3600) == 1970
    tank = Consumable("water", "ml", 5000)
    depth = [250]
    sensor = TankLevel(Box(100, 100, 500), lambda: depth[0])
    assert feed(tank, sensor, T0) == 0 and tank.level(T0) == 2500
    assert feed(tank, sensor, T0 + 3600 * 4) == 0
    depth[0] = 50  # refilled: two high readings confirm it
    assert feed(tank, sensor, T0 + 3600 * 8) == 0
    assert feed(tank, sensor, T0 + 3600 * 12) > 0


# ---------------------------------------------------------------- simulated source

def run(sim, hours):
    return [sim.read(T0 + 3600 * h) for h in range(hours)]


def test_simulated_source_is_deterministic_per_seed():
    make = lambda seed: SimulatedLevel(10_000, 1000, T0, noise=20, seed=seed)  # noqa: E731
    assert run(make(7), 48) == run(make(7), 48)
    assert run(make(7), 48) != run(make(8), 48)


def test_simulated_source_uses_about_its_daily_use_and_refills():
    sim = SimulatedLevel(10_000, 1000, T0, noise=0, variability=0.3, seed=1)
    assert sim.kind == LEVEL
    readings = run(sim, 24 * 5 + 1)
    assert readings[0] == 10_000
    assert 4000 < 10_000 - readings[-1] < 6000
    assert all(a >= b for a, b in zip(readings, readings[1:]))  # no noise, no refills
    refilling = SimulatedLevel(10_000, 1000, T0, refill_below=2000, seed=1)
    readings = run(refilling, 24 * 20)
    assert refilling.refills >= 2
    assert min(readings) >= 1000 and max(readings[24:]) > 9000
    with pytest.raises(ValueError):
        refilling.read(T0)
